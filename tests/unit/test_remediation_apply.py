"""remediation.apply: buckets before max, the files planned before the kernel,
partial changes reported, and the re-apply outcome."""

import pytest
from salt.exceptions import CommandExecutionError

from saltext_conntrack.remediation import apply, decide

STATUS = {"max": 1000, "buckets": 128, "flavour": "nf_conntrack"}
CONF = {"persist": True, "sysctl_file": "/etc/sysctl.d/90-conntrack.conf", "modprobe_file": "/etc/modprobe.d/c.conf"}
PLAN = decide.Plan(
    current_max=1000, current_buckets=128, new_max=65536, new_buckets=8192, ceiling=65536, recommendation=65536
)


class Host:
    def __init__(self, root, fail=()):
        self.calls, self.fail = [], set(fail)
        self.actions = apply.Actions(
            set_buckets=self.setter("buckets"),
            set_max=self.setter("max"),
            persist_sysctl=self.writer("sysctl"),
            module_options=self.writer("modprobe"),
            sysctl_names=lambda: {"max": "net.netfilter.nf_conntrack_max"},
            root=str(root),
            release="6.1.0",
        )

    def setter(self, name):
        def set_value(value):
            self.calls.append((name, value))
            if name in self.fail:
                raise OSError(f"cannot write {name}")
            return {"new": value}

        return set_value

    def writer(self, name):
        def write(*args, **kwargs):
            self.calls.append((name, kwargs["test"]))
            if f"{name}-plan" in self.fail or (name in self.fail and not kwargs["test"]):
                raise CommandExecutionError(f"cannot write the {name} file")
            return {"args": args, "path": kwargs["path"]}

        return write


def report():
    return apply.report(STATUS, [], 1.0, decide.Decision(None, evidence=("full",), evaluated=True))


def test_success_resizes_first_and_persists(tmp_path):
    host, ret = Host(tmp_path), report()
    apply.run(ret, PLAN, CONF, "nf_conntrack", host.actions)
    assert [c[0] for c in host.calls if c[0] in ("buckets", "max")] == ["buckets", "max"]
    assert host.calls.index(("sysctl", True)) < host.calls.index(("buckets", 8192))  # planned first
    assert ret["remediated"] is True and ret["new"] == {"max": 65536, "buckets": 8192} and ret["ceiling"] == 65536
    assert ret["persisted"]["modprobe"]["args"] == ("nf_conntrack", {"hashsize": 8192})
    assert "min(ceiling 65536, max(2 x 1000, 65536))" in ret["reason"]
    tag, event = apply.finish(ret)
    assert tag == apply.TAG_REMEDIATED and event["result"] is True and "namespaces" not in event


def test_a_plan_that_fails_touches_nothing(tmp_path):
    host, ret = Host(tmp_path, fail={"sysctl-plan"}), report()
    apply.run(ret, PLAN, CONF, "nf_conntrack", host.actions)
    assert ret["refused"] == "apply_failed" and "nothing changed" in ret["reason"]
    assert not [c for c in host.calls if c[0] in ("buckets", "max")]
    assert apply.finish(ret)[0] == apply.TAG_REFUSED and ret["result"] is False


def test_max_failure_reports_the_grown_buckets(tmp_path):
    host, ret = Host(tmp_path, fail={"max"}), report()
    apply.run(ret, PLAN, CONF, "nf_conntrack", host.actions)
    assert ret["remediated"] is False and ret["refused"] == "apply_failed"
    assert ret["new"] == {"max": 1000, "buckets": 8192} and "buckets already resized to 8192" in ret["reason"]
    assert "OSError: cannot write max" in ret["errors"][0]
    assert ("sysctl", False) not in host.calls


def test_persist_failure_keeps_the_runtime_fix(tmp_path):
    host, ret = Host(tmp_path, fail={"sysctl"}), report()
    apply.run(ret, PLAN, CONF, "nf_conntrack", host.actions)
    assert ret["remediated"] is True and ret["errors"] == ["not persisted: cannot write the sysctl file"]
    assert apply.finish(ret)[0] == apply.TAG_REMEDIATED and ret["result"] is False


def test_no_modprobe_options_for_a_built_in_module(tmp_path):
    (tmp_path / "sys/module/nf_conntrack").mkdir(parents=True)
    done = apply.persist(Host(tmp_path).actions, CONF, "nf_conntrack", 65536, 8192, test=True)
    assert "built into this kernel" in done["modprobe"]["skipped"]


def test_at_ceiling_changes_nothing(tmp_path):
    host, ret = Host(tmp_path), report()
    plan = decide.size({"max": 1000, "buckets": 128}, {"cap": 1000, "target": None, "hash_ratio": 8}, {"max": 65536})
    apply.run(ret, plan, CONF, "nf_conntrack", host.actions)
    assert ret["refused"] == "at_ceiling" and ret["ceiling"] == 1000 and host.calls == []
    assert apply.finish(ret)[1]["result"] is False


@pytest.mark.parametrize(
    "applied, outcome",
    [
        ({"a": {"result": True}}, {"reapplied": True, "reason": "2 difference(s): conntrack formula re-applied"}),
        ({"a": {"result": False, "comment": "no"}}, {"refused": "apply_failed", "result": False}),
        (["SLS conntrack did not render"], {"refused": "apply_failed", "result": False}),
    ],
)
def test_reapplied(applied, outcome):
    got = apply.reapplied(applied, [{}, {}])
    assert {k: got[k] for k in outcome} == outcome
    ret = {**apply.reapply_report(decide.Decision(None), [{}, {}]), **got}
    assert apply.reapply_event(ret)[0] == (apply.TAG_REAPPLIED if got.get("reapplied") else apply.TAG_REAPPLY_REFUSED)
