# agent.hcl: the provtrail agent on one host, as the packages install it at
# /etc/provtrail/agent.hcl (owner provtrail, mode 0600). Relative paths are
# relative to this file. Check it with: provtrail validate --config FILE
agent {
  # Unique per host; central knows the agent by this id and its key.
  id        = "web-01"
  state_dir = "/var/lib/provtrail"
}

# The long-term identity key (provtrail keygen); it signs only stream
# starts. Keep it and its passphrase file owner-only (chmod 600).
signer {
  key_file        = "/etc/provtrail/agent.key"
  passphrase_file = "/etc/provtrail/agent.pass"
}

forward {
  url     = "https://central.example:7443"
  ca_file = "/etc/provtrail/ca.pem"
}

# Prometheus metrics, /healthz and /readyz; keep it on loopback.
metrics {
  listen = "127.0.0.1:9464"
}

# Debian/Ubuntu write auth.log, RHEL-family secure: list both, missing files
# are fine. The packaged unit reads them through group adm.
collector "authlog" "system" {
  paths = ["/var/log/auth.log", "/var/log/secure"]
}

# passwd, group, shadow and gshadow diffs. shadow/gshadow are not readable
# through group adm: see "Reading /etc/shadow and sudoers" in
# docs/operations.md for the drop-in that grants it.
collector "accounts" "local" {
  sudoers = false
}
