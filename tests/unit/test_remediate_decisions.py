"""conntrack_remediate.remediate's decisions with a fake execution module:
partial failures are reported (result False, an event carrying the partial
change), baselines survive rate-limited calls, and a clock that went back is
clamped."""

import json
import os
import time

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support.loaderfile import load


class Host:
    """What the fake execution module reports and records."""

    def __init__(self):
        self.max, self.buckets, self.count, self.drop = 1000, 128, 10, 0
        self.fail = set()
        self.events = []
        self.calls = []

    def status(self):
        return {
            "flavour": "nf_conntrack",
            "max": self.max,
            "buckets": self.buckets,
            "count": self.count,
            "stats": {"drop": self.drop},
            "initial_netns": True,
        }

    def setter(self, name):
        def set_value(value, **_):
            self.calls.append((name, value))
            if name in self.fail:
                raise CommandExecutionError(f"cannot write {name}")
            old = getattr(self, name)
            setattr(self, name, value)
            return {"old": old, "new": value}

        return set_value

    def persist(self, name):
        def write(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            # "sysctl" fails the write (a full disk), "sysctl-plan" the plan too.
            if f"{name}-plan" in self.fail or (name in self.fail and not kwargs.get("test")):
                raise CommandExecutionError(f"cannot write the {name} file")
            return {"path": kwargs.get("path"), "changes": {}}

        return write

    def salt(self):
        return {
            "conntrack.status": self.status,
            "config.get": lambda key, default=None: default,
            "conntrack.recommend": lambda **_: {"max": 65536, "hashsize": 8192},
            "conntrack.sysctl_names": lambda: {"max": "net.netfilter.nf_conntrack_max"},
            "conntrack.set_buckets": self.setter("buckets"),
            "conntrack.set_max": self.setter("max"),
            "conntrack_files.persist_sysctl": self.persist("sysctl"),
            "conntrack_files.module_options": self.persist("modprobe"),
            "event.send": lambda tag, data: self.events.append((tag, data)),
        }


@pytest.fixture
def host(tmp_path, monkeypatch):
    mod = load("_modules/conntrack_remediate.py", name="unit_conntrack_remediate_decisions")
    fake = Host()
    root = tmp_path / "root"
    (root / "etc" / "sysctl.d").mkdir(parents=True)  # the default sysctl file is /etc/sysctl.d/90-conntrack.conf
    monkeypatch.setattr(mod, "__salt__", fake.salt(), raising=False)
    monkeypatch.setattr(
        mod, "__opts__", {"cachedir": str(tmp_path / "cache"), "conntrack.root": str(root)}, raising=False
    )
    monkeypatch.setattr(mod, "__grains__", {"kernel": "Linux"}, raising=False)
    fake.mod = mod
    fake.root = root
    fake.state_file = tmp_path / "cache" / "conntrack" / "remediate.json"
    return fake


def _state(host):
    with open(host.state_file, encoding="utf-8") as fh:
        return json.load(fh)


def _set_state(host, **values):
    data = _state(host)
    data.update(values)
    with open(host.state_file, "w", encoding="utf-8") as fh:
        json.dump(data, fh)


def test_failed_persist_is_not_a_success(host):
    host.count = 1000  # full
    host.fail = {"sysctl"}
    ret = host.mod.remediate()
    assert ret["remediated"] is True and ret["new"]["max"] == 65536  # the runtime fix holds
    assert ret["result"] is False, ret
    assert any("not persisted" in e and "cannot write the sysctl file" in e for e in ret["errors"]), ret
    ((tag, data),) = host.events
    assert tag == "conntrack/remediated" and data["result"] is False and data["errors"] == ret["errors"]


def test_failed_bucket_resize_is_not_a_success(host):
    host.count = 1000
    host.fail = {"buckets"}
    ret = host.mod.remediate()
    assert ret["remediated"] is True and ret["result"] is False, ret
    assert ret["new"] == {"max": 65536, "buckets": 128}
    assert any(e.startswith("buckets not resized") for e in ret["errors"])


def test_set_max_failure_after_resize_is_reported_with_the_partial_change(host):
    host.count = 1000
    host.fail = {"max"}
    ret = host.mod.remediate()  # must not raise
    assert ret["remediated"] is False and ret["refused"] == "apply_failed" and ret["result"] is False, ret
    assert ret["old"] == {"max": 1000, "buckets": 128}
    assert ret["new"] == {"max": 1000, "buckets": 8192}  # the buckets did grow
    assert any("max not raised" in e for e in ret["errors"])
    assert "buckets already resized to 8192" in ret["reason"]
    ((tag, data),) = host.events
    assert tag == "conntrack/remediation_refused" and data["new"] == ret["new"] and data["errors"]
    assert not [c for c in host.calls if c[0] in ("sysctl", "modprobe") and not c[2]["test"]]  # nothing persisted
    # No rate limit after a failure: the next confirmed event tries again.
    host.fail = set()
    again = host.mod.remediate()
    assert again["remediated"] is True and again["result"] is True, again


def test_success_has_result_true(host):
    host.count = 1000
    ret = host.mod.remediate()
    assert ret["remediated"] is True and ret["result"] is True and "errors" not in ret, ret


def test_drops_during_the_rate_limit_window_still_confirm_later(host):
    host.count = 1000
    assert host.mod.remediate()["remediated"] is True
    assert _state(host)["drops"]["initial"] == 0
    # Inside the window the table overflows again (the max was put back by
    # hand), then empties.
    host.drop, host.count, host.max = 7, 10, 1000
    limited = host.mod.remediate()
    assert limited["refused"] == "rate_limited"
    assert _state(host)["drops"]["initial"] == 0, "a rate-limited call moved the baseline"
    # The window is over: the drops seen during it confirm now.
    _set_state(host, last_remediation=time.time() - 601)
    ret = host.mod.remediate()
    assert ret["remediated"] is True, ret
    assert any("drop counter rose from 0 to 7" in ev for ev in ret["evidence"]), ret
    assert _state(host)["drops"]["initial"] == 7


def test_rate_limited_call_learns_only_new_namespaces(host):
    host.mod.remediate()  # healthy: baseline recorded
    _set_state(host, last_remediation=time.time(), drops={})
    host.drop = 3
    assert host.mod.remediate()["refused"] == "rate_limited"
    assert _state(host)["drops"] == {"initial": 3}


def test_clock_that_went_back_is_clamped(host):
    host.mod.remediate()
    future = time.time() + 10**6  # last remediation "in 11 days": the clock went back
    _set_state(host, last_remediation=future)
    before = time.time()
    ret = host.mod.remediate(interval=600)
    assert ret["refused"] == "rate_limited", ret
    last = _state(host)["last_remediation"]
    assert before <= last <= time.time(), "not clamped: the limit would hold until the clock catches up"
    assert "next allowed in 601 s" in ret["reason"] or "next allowed in 600 s" in ret["reason"], ret
    # Once the interval from the clamp has passed, it acts again (no endless block).
    host.count = 1000
    _set_state(host, last_remediation=last - 601)
    assert host.mod.remediate(interval=600)["remediated"] is True


def test_not_initial_netns_keeps_baselines(host):
    host.mod.remediate()
    host.drop = 4
    original = host.status
    host.mod.__salt__["conntrack.status"] = lambda: {**original(), "initial_netns": False}
    assert host.mod.remediate()["refused"] == "not_initial_netns"
    assert _state(host)["drops"] == {"initial": 0}
    assert os.path.exists(host.state_file)


@pytest.mark.parametrize("builtin", [False, True])
def test_modprobe_options_only_where_the_module_loads(host, builtin):
    """The same rule as conntrack.tuned: no options for a built-in module."""
    host.count = 1000
    if builtin:  # no /proc/modules, /sys/module/nf_conntrack: built in
        (host.root / "sys/module/nf_conntrack").mkdir(parents=True)
    ret = host.mod.remediate()
    assert ret["result"] is True, ret
    written = [c for c in host.calls if c[0] == "modprobe" and not c[2]["test"]]
    if builtin:
        assert not written and "built into this kernel" in ret["persisted"]["modprobe"]["skipped"]
    else:
        ((_, args, kwargs),) = written
        assert args == ("nf_conntrack", {"hashsize": 8192})
        assert kwargs["path"] == "/etc/modprobe.d/conntrack.conf" and kwargs["lower"] is False


# ---------------------------------------------------------------------------
# Every argument and every path is checked before the first change.


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"sysctl_file": "/etc/passwd"}, SaltInvocationError, "sysctl file must be"),
        ({"modprobe_file": "/etc/profile"}, SaltInvocationError, "modprobe file must be"),
        ({"sysctl_file": "/etc/sysctl.d/../../etc/passwd"}, SaltInvocationError, "'..'"),
        ({"persist": "ture"}, SaltInvocationError, "persist must be true or false"),
        ({"persist": "false"}, SaltInvocationError, "persist must be true or false"),
        ({"persist": 1}, SaltInvocationError, "persist must be true or false"),
        ({"fire_event": "no"}, SaltInvocationError, "fire_event must be true or false"),
        ({"threshold": float("nan")}, SaltInvocationError, "threshold"),
        ({"threshold": True}, SaltInvocationError, "threshold"),
        ({"interval": "1_000"}, SaltInvocationError, "interval"),
        ({"interval": "\uff16\uff10\uff10"}, SaltInvocationError, "interval"),
        ({"hash_ratio": 5.0}, SaltInvocationError, "hash_ratio"),
        ({"cap": "1e6"}, SaltInvocationError, "cap"),
    ],
)
def test_bad_arguments_change_nothing(host, kwargs, error, message):
    host.count = 1000  # a full table: the old code acted before refusing
    with pytest.raises(error, match=message):
        host.mod.remediate(**kwargs)
    assert host.max == 1000 and host.buckets == 128
    assert not [c for c in host.calls if c[0] in ("max", "buckets")]
    assert not host.events


@pytest.mark.parametrize("which", ["sysctl", "modprobe"])
def test_a_file_linked_out_of_the_root_changes_nothing(host, tmp_path, which):
    rel = {"sysctl": "etc/sysctl.d/90-conntrack.conf", "modprobe": "etc/modprobe.d/conntrack.conf"}[which]
    outside = tmp_path / "outside.conf"
    outside.write_text("# not ours\n")
    (host.root / rel).parent.mkdir(parents=True, exist_ok=True)
    (host.root / rel).symlink_to(outside)
    host.count = 1000
    with pytest.raises(CommandExecutionError, match="outside"):
        host.mod.remediate()
    assert host.max == 1000 and host.buckets == 128 and not host.calls
    assert outside.read_text() == "# not ours\n"


def test_a_persist_plan_that_fails_refuses_before_the_kernel(host):
    host.count = 1000
    host.fail = {"sysctl-plan"}
    ret = host.mod.remediate()
    assert ret["remediated"] is False and ret["refused"] == "apply_failed" and ret["result"] is False, ret
    assert "nothing changed" in ret["reason"]
    assert host.max == 1000 and host.buckets == 128
    assert not [c for c in host.calls if c[0] in ("max", "buckets")]
    ((tag, _),) = host.events
    assert tag == "conntrack/remediation_refused"


def test_persist_false_touches_no_file(host):
    host.count = 1000
    ret = host.mod.remediate(persist=False)
    assert ret["remediated"] is True and ret["persisted"] == {}
    assert not [c for c in host.calls if c[0] in ("sysctl", "modprobe")]
    # A bad path is an error even when nothing would be persisted, and nothing is raised.
    host.calls.clear()
    with pytest.raises(SaltInvocationError):
        host.mod.remediate(persist=False, sysctl_file="/etc/passwd")
    assert host.calls == []


def _with_flush(host, port=53):
    """The fake host's walk names unreplied udp/``port``; flushes are recorded."""
    relief = {"kwargs": {"proto": "udp", "dport": port, "unreplied": True}}
    finding = {"id": "unreplied_udp_port", "relief": relief}
    host.mod.__salt__["conntrack.diagnose"] = lambda **_: host.calls.append("diagnose") or {"findings": [finding]}

    def flush(**kwargs):
        host.calls.append(("flush", kwargs))
        return {"filter": kwargs, "matched": 7, "deleted": 7, "gone": 0, "test": False}

    host.mod.__salt__["conntrack.flush"] = flush


def test_flush_is_off_by_default(host):
    _with_flush(host)
    host.count = 1000
    ret = host.mod.remediate()
    assert ret["remediated"] is True and "flushed" not in ret
    assert "diagnose" not in host.calls and not [c for c in host.calls if c[0] == "flush"]


def test_flush_on_deletes_what_the_hosts_own_walk_names_once_confirmed(host):
    _with_flush(host)
    host.count = 10  # not confirmed: nothing walked, nothing flushed
    assert host.mod.remediate(flush=True)["refused"] == "not_confirmed"
    assert "diagnose" not in host.calls
    host.count = 1000
    ret = host.mod.remediate(flush=True)
    assert ret["flushed"] == {
        "filter": {"proto": "udp", "dport": 53, "unreplied": True},
        "matched": 7,
        "deleted": 7,
        "gone": 0,
    }
    assert ("flush", {"proto": "udp", "dport": 53, "unreplied": True}) in host.calls
    assert ret["remediated"] is True  # the limit is still sized: the relief is not the fix
    # Rate limited like the rest: the next call flushes nothing.
    host.calls.clear()
    assert host.mod.remediate(flush=True)["refused"] == "rate_limited" and "diagnose" not in host.calls


def test_flush_with_nothing_named_or_failing_is_reported_not_raised(host):
    host.mod.__salt__["conntrack.diagnose"] = lambda **_: {"findings": []}
    host.count = 1000
    assert "nothing flushed" in host.mod.remediate(flush=True)["flushed"]["skipped"]
    _set_state(host, last_remediation=0)
    host.count = host.max  # full again at the raised limit

    def broken(**_):
        raise CommandExecutionError("cannot open ctnetlink: EPERM")

    _with_flush(host)
    host.mod.__salt__["conntrack.flush"] = broken
    ret = host.mod.remediate(flush=True)
    assert ret["flushed"] == {"error": "not flushed: cannot open ctnetlink: EPERM"}  # reported, not raised


def test_a_bad_flush_option_is_refused_before_anything(host):
    with pytest.raises(SaltInvocationError, match="flush"):
        host.mod.remediate(flush="sometimes")
    assert not host.calls and not host.events
