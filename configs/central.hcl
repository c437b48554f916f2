# central.hcl: the receiving service. Paths are relative to this file.
central {
  listen   = "0.0.0.0:7443"
  data_dir = "/var/lib/provtrail-central"
  audience = "provtrail"
  # An agent is reported silent (builtin.silent_agent) after its
  # heartbeat_interval plus this margin without a batch or heartbeat.
  silence_margin = "1m"
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
  public_key_file    = "keys/web-01.pub"
  heartbeat_interval = "1m" # the agent's own setting (default 1m)
}

# Alert rules: `when` is an HCL expression over the stored event; see
# docs/operations.md for the built-in alerts that are always on.
variables {
  privileged_groups = ["sudo", "wheel", "admins", "adm", "docker"]
}

# Collectors report membership in a group they know as privileged (their own
# privileged_groups setting) as privilege.grant, other memberships as
# group.member.add; this rule catches both.
alert "privileged_grant" {
  when     = contains(["group.member.add", "privilege.grant"], event.action) && contains(var.privileged_groups, event.target.group.name)
  severity = "high"
  notify   = ["oncall"]
}

alert "grant_burst" {
  when     = event.action == "privilege.grant"
  group_by = [event.actor.name]
  threshold {
    count  = 5
    within = "10m"
  }
  notify = ["oncall"]
}

alert "short_lived_account" {
  sequence {
    first  = event.action == "user.create"
    then   = event.action == "user.delete"
    same   = [event.target.user.name, event.origin.host]
    within = "1h"
  }
  notify = ["oncall"]
}

notifier "webhook" "oncall" {
  url    = env("ONCALL_WEBHOOK", "https://hooks.example.com/provtrail")
  format = "slack"
}
