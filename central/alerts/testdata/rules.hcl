variables {
  privileged_groups = ["sudo", "wheel", "admins"]
}

alert "privileged_grant" {
  when     = event.action == "group.member.add" && contains(var.privileged_groups, event.target.group.name)
  severity = "high"
  notify   = ["oncall", "siem"]
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

alert "root_failures" {
  when     = event.outcome == "failure" && event.actor.name == "root"
  severity = "low"
}

notifier "webhook" "oncall" {
  url    = env("ONCALL_WEBHOOK")
  format = "slack"
}

notifier "syslog" "siem" {
  address  = env("SIEM_ADDRESS")
  facility = "authpriv"
}
