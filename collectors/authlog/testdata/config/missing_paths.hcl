timezone = "UTC"
