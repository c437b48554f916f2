# The 50 rules of central's BenchmarkIngestRules and alerts'
# BenchmarkEvaluateStored50Rules: 45 literal rules, a privileged grant
# through var, and a threshold and a sequence that keep state for every
# group.member.add.
variables {
  privileged_groups = ["sudo", "admins"]
}
alert "r0" {
  when = event.action == "credential.create" && event.actor.name == "svc-0"
}
alert "r1" {
  when = event.action == "credential.delete" && event.actor.name == "svc-1"
}
alert "r2" {
  when = event.action == "group.create" && event.actor.name == "svc-2"
}
alert "r3" {
  when = event.action == "group.delete" && event.actor.name == "svc-3"
}
alert "r4" {
  when = event.action == "group.member.add" && event.actor.name == "svc-4"
}
alert "r5" {
  when = event.action == "group.member.remove" && event.actor.name == "svc-5"
}
alert "r6" {
  when = event.action == "group.modify" && event.actor.name == "svc-6"
}
alert "r7" {
  when = event.action == "mfa.disable" && event.actor.name == "svc-7"
}
alert "r8" {
  when = event.action == "mfa.enable" && event.actor.name == "svc-8"
}
alert "r9" {
  when = event.action == "password.change" && event.actor.name == "svc-9"
}
alert "r10" {
  when = event.action == "password.reset" && event.actor.name == "svc-10"
}
alert "r11" {
  when = event.action == "privilege.grant" && event.actor.name == "svc-11"
}
alert "r12" {
  when = event.action == "privilege.revoke" && event.actor.name == "svc-12"
}
alert "r13" {
  when = event.action == "user.create" && event.actor.name == "svc-13"
}
alert "r14" {
  when = event.action == "user.delete" && event.actor.name == "svc-14"
}
alert "r15" {
  when = event.action == "user.disable" && event.actor.name == "svc-15"
}
alert "r16" {
  when = event.action == "user.enable" && event.actor.name == "svc-16"
}
alert "r17" {
  when = event.action == "user.lock" && event.actor.name == "svc-17"
}
alert "r18" {
  when = event.action == "user.modify" && event.actor.name == "svc-18"
}
alert "r19" {
  when = event.action == "user.rename" && event.actor.name == "svc-19"
}
alert "r20" {
  when = event.action == "user.unlock" && event.actor.name == "svc-20"
}
alert "r21" {
  when = event.action == "credential.create" && event.actor.name == "svc-21"
}
alert "r22" {
  when = event.action == "credential.delete" && event.actor.name == "svc-22"
}
alert "r23" {
  when = event.action == "group.create" && event.actor.name == "svc-23"
}
alert "r24" {
  when = event.action == "group.delete" && event.actor.name == "svc-24"
}
alert "r25" {
  when = event.action == "group.member.add" && event.actor.name == "svc-25"
}
alert "r26" {
  when = event.action == "group.member.remove" && event.actor.name == "svc-26"
}
alert "r27" {
  when = event.action == "group.modify" && event.actor.name == "svc-27"
}
alert "r28" {
  when = event.action == "mfa.disable" && event.actor.name == "svc-28"
}
alert "r29" {
  when = event.action == "mfa.enable" && event.actor.name == "svc-29"
}
alert "r30" {
  when = event.action == "password.change" && event.actor.name == "svc-30"
}
alert "r31" {
  when = event.action == "password.reset" && event.actor.name == "svc-31"
}
alert "r32" {
  when = event.action == "privilege.grant" && event.actor.name == "svc-32"
}
alert "r33" {
  when = event.action == "privilege.revoke" && event.actor.name == "svc-33"
}
alert "r34" {
  when = event.action == "user.create" && event.actor.name == "svc-34"
}
alert "r35" {
  when = event.action == "user.delete" && event.actor.name == "svc-35"
}
alert "r36" {
  when = event.action == "user.disable" && event.actor.name == "svc-36"
}
alert "r37" {
  when = event.action == "user.enable" && event.actor.name == "svc-37"
}
alert "r38" {
  when = event.action == "user.lock" && event.actor.name == "svc-38"
}
alert "r39" {
  when = event.action == "user.modify" && event.actor.name == "svc-39"
}
alert "r40" {
  when = event.action == "user.rename" && event.actor.name == "svc-40"
}
alert "r41" {
  when = event.action == "user.unlock" && event.actor.name == "svc-41"
}
alert "r42" {
  when = event.action == "credential.create" && event.actor.name == "svc-42"
}
alert "r43" {
  when = event.action == "credential.delete" && event.actor.name == "svc-43"
}
alert "r44" {
  when = event.action == "group.create" && event.actor.name == "svc-44"
}

alert "priv" {
  when = event.action == "group.member.add" && contains(var.privileged_groups, event.target.group.name)
}
alert "burst" {
  when     = event.action == "group.member.add"
  group_by = [event.actor.name]
  threshold {
    count  = 1000000
    within = "10m"
  }
}
alert "seq" {
  sequence {
    first  = event.action == "group.member.add"
    then   = event.action == "group.member.remove"
    same   = [event.target.user.name, event.target.group.name]
    within = "1h"
  }
}
alert "failures" {
  when = event.action == "password.change" && event.outcome == "failure"
}
alert "root" {
  when = contains(["user.create", "user.delete"], event.action) && event.actor.name == "root"
}
