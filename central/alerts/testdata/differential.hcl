variables {
  admins = ["root", "alice"]
  priv   = ["wheel", "sudo"]
}

alert "exact_actor" {
  when = event.action == "user.create" && event.actor.name == "root"
}

alert "var_group" {
  when = event.action == "group.member.add" && contains(var.priv, event.target.group.name)
}

alert "var_actor_any_action" {
  when = contains(var.admins, event.actor.name) && event.outcome == "failure"
}

alert "or_of_ands" {
  when = (event.action == "user.delete" && event.origin.host == "db1") || (event.action == "user.lock" && event.origin.system == "aws")
}

alert "hcl_function" {
  when = event.action == "privilege.grant" && length(event.target.privileges) > 1
}

alert "hcl_lower" {
  when = event.action == "password.reset" && lower(event.actor.name) == "root"
}

alert "empty_literal" {
  when = event.action == "user.modify" && event.actor.name == ""
}

alert "id_field" {
  when = event.action == "user.modify" && event.actor.id == "u1"
}

alert "burst_names" {
  when     = event.action == "privilege.grant"
  group_by = [event.actor.name, event.target.user.name]
  threshold {
    count  = 3
    within = "10m"
  }
}

alert "burst_hcl_key" {
  when     = event.action == "group.member.add"
  group_by = [event.actor.id]
  threshold {
    count  = 2
    within = "5m"
  }
}

alert "burst_host" {
  when     = contains(var.admins, event.actor.name)
  group_by = [event.origin.host]
  threshold {
    count  = 4
    within = "10m"
  }
}

alert "seq_names" {
  sequence {
    first  = event.action == "user.create"
    then   = event.action == "user.delete"
    same   = [event.target.user.name, event.origin.host]
    within = "30m"
  }
}

alert "seq_mixed" {
  sequence {
    first  = event.action == "group.member.add" && event.target.group.name == "wheel"
    then   = event.action == "group.member.remove" && strlen(event.target.group.name) > 0
    same   = [event.target.user.name]
    within = "1h"
  }
}

alert "seq_any_action" {
  sequence {
    first  = event.outcome == "failure"
    then   = event.outcome == "success" && event.actor.name == "root"
    same   = [event.actor.name]
    within = "20m"
  }
}
