paths          = ["var/log/auth.log", "/var/log/auth.log.2.gz", ""]
timezone       = "Mars/Olympus"
year           = 12
max_line_bytes = "10B"
start_at       = "middle"
poll_interval  = "2h"
