paths = ["/var/log/auth.log"]
