# agent.hcl: one per host. Paths are relative to this file unless absolute.
agent {
  id        = "web-01"
  state_dir = "/var/lib/provtrail"
}

# The long-term identity key: it signs stream starts and resets only; every
# batch is signed by a one-time key named in the previous batch.
signer {
  key_file        = "/etc/provtrail/agent.key"
  passphrase_file = "/etc/provtrail/agent.pass"
}

forward {
  url              = "https://central.example:7443"
  ca_file          = "/etc/provtrail/ca.pem"
  batch_max_events = 500
  batch_max_wait   = "1s"
  spool_max_bytes  = "1GiB"
  # Central's log key (its DATA_DIR/log/log.vkey), copied once out of band: the agent then
  # checks that every acknowledged batch is in central's transparency log.
  # log_key_file   = "/etc/provtrail/log.vkey"
}

metrics {
  listen = "127.0.0.1:9464"
}

collector "authlog" "system" {
  paths = ["/var/log/auth.log", "/var/log/secure"]
}
