# central.hcl: the receiving service. Paths are relative to this file.
central {
  listen   = "0.0.0.0:7443"
  data_dir = "/var/lib/provtrail-central"
  audience = "provtrail"
}

tls {
  cert_file = "/etc/provtrail/central.crt"
  key_file  = "/etc/provtrail/central.key"
  # client_ca_file      = "/etc/provtrail/agents-ca.pem"
  # require_client_cert = true
}

log_signer {
  key_file        = "/etc/provtrail/log.key"
  passphrase_file = "/etc/provtrail/log.pass"
  origin          = "central.example/provtrail"
}

agent "web-01" {
  public_key_file = "keys/web-01.pub"
}
