paths = ["/var/log/auth.log"]
timezon = "UTC"
