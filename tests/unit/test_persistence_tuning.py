"""The tuning plan and apply of ``persistence.tuning``, on fixture trees with
stand-ins for the ``conntrack`` execution functions."""

import os

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.persistence import tuning
from tests.support.hosts import host_root, tree_snapshot

REQUEST = {"max": None, "buckets": None, "timeouts": None, "persist": None, "survive_reload": False, "force": False}
NAMES = {
    "max": "net.netfilter.nf_conntrack_max",
    "buckets": "net.netfilter.nf_conntrack_buckets",
    "udp": "net.netfilter.nf_conntrack_udp_timeout",
}


class Kernel:
    """The runtime values a setter sees, and every call made."""

    def __init__(self, maximum=65536, hashsize=16384, udp=30, fail=None):
        self.values = {"max": maximum, "buckets": hashsize, "udp": udp}
        self.calls, self.fail = [], fail

    def set(self, key, value, test):
        if self.fail == key and not test:
            raise CommandExecutionError(f"{key} refused")
        old = self.values[key]
        self.calls.append((key, value, test))
        if not test:
            self.values[key] = value
        return {"old": old, "new": value}

    def calls_of(self):
        return tuning.RuntimeCalls(
            sysctl_names=lambda: dict(NAMES),
            recommend=lambda: {"max": 262144, "hashsize": 65536, "current": {"max": self.values["max"]}},
            status=lambda: {"max": self.values["max"], "hashsize": self.values["buckets"]},
            timeouts=lambda: {"udp": self.values["udp"]},
            set_max=lambda value, force=False, test=False: self.set("max", value, test),
            set_buckets=lambda value, force=False, test=False: self.set("buckets", value, test),
            set_timeout=lambda name, seconds, test=False: self.set(name, seconds, test),
        )


def plan(root, kernel, **request):
    return tuning.plan(str(root), "6.17.0", kernel.calls_of(), {**REQUEST, **request})


def test_runtime_calls_of_a_loaders_functions():
    functions = {f"conntrack.{name}": name for name in
                 ("sysctl_names", "recommend", "status", "timeouts", "set_max", "set_buckets", "set_timeout")}  # fmt: skip
    calls = tuning.RuntimeCalls.of({**functions, "conntrack.other": None})
    assert calls.setter("conntrack.set_timeout") == "set_timeout"
    assert calls.status == "status"


def test_plan_checks_every_write_in_test_mode_and_changes_nothing(tmp_path):
    root = host_root(tmp_path / "r")
    kernel = Kernel()
    before = tree_snapshot(root)
    out = plan(root, kernel, max="auto", timeouts={"udp": 60})
    assert out["max"] == 262144 and out["timeouts"] == {"udp": 60}
    assert out["persist"] == "/etc/sysctl.d/90-conntrack.conf"
    assert [step["setter"] for step in out["runtime"]] == ["conntrack.set_max", "conntrack.set_timeout"]
    assert set(out["changes"]) == {"max", "timeout udp", "/etc/sysctl.d/90-conntrack.conf"}
    assert all(test for _, _, test in kernel.calls)
    assert kernel.values["max"] == 65536 and tree_snapshot(root) == before


def test_auto_never_lowers_what_the_kernel_has(tmp_path):
    out = plan(host_root(tmp_path / "r"), Kernel(maximum=900000), max="auto")
    assert out["max"] == 900000 and out["changes"].get("max") is None


@pytest.mark.parametrize(
    "request_, match",
    [
        ({"timeouts": {"tcp_nonsense": 5}}, "unknown conntrack timeout"),
        ({"max": 0}, "max"),
        ({"persist": "/etc/passwd"}, "sysctl"),
        ({"force": "ture"}, "force"),
    ],
)
def test_bad_requests_are_refused_before_any_call(tmp_path, request_, match):
    root = host_root(tmp_path / "r")
    kernel = Kernel()
    with pytest.raises(SaltInvocationError, match=match):
        plan(root, kernel, **request_)
    assert kernel.calls == []


def test_not_loaded_persists_and_says_pending(tmp_path):
    root = host_root(tmp_path / "r", loaded=False)
    kernel = Kernel()
    out = plan(root, kernel, max=131072)
    assert out["loaded"] is False and out["runtime"] == [] and kernel.calls == []
    assert "conntrack is not loaded, so max are persisted and pending" in out["pending"]


def test_apply_sets_writes_and_records_for_drift(tmp_path):
    root, cachedir = host_root(tmp_path / "r"), tmp_path / "cache"
    kernel = Kernel()
    out = plan(root, kernel, max=131072)
    done = tuning.apply(str(root), out, kernel.calls_of(), str(cachedir))
    assert done == ["max", "/etc/sysctl.d/90-conntrack.conf"]
    assert kernel.values["max"] == 131072
    with open(os.path.join(root, "etc/sysctl.d/90-conntrack.conf"), encoding="utf-8") as fh:
        assert "net.netfilter.nf_conntrack_max = 131072" in fh.read()
    assert os.listdir(cachedir)
    assert tuning.summary(out) == {k: out[k] for k in ("changes", "pending", "overrides", "persist")}


def test_apply_failure_names_what_already_changed(tmp_path):
    root = host_root(tmp_path / "r")
    kernel = Kernel(fail="udp")
    out = plan(root, kernel, max=131072, timeouts={"udp": 60})
    with pytest.raises(CommandExecutionError, match=r"udp refused \(already changed before the failure: max\)"):
        tuning.apply(str(root), out, kernel.calls_of(), str(tmp_path / "cache"))
    first = Kernel(fail="max")
    with pytest.raises(CommandExecutionError, match="^max refused$"):
        tuning.apply(str(root), plan(root, first, max=131072), first.calls_of(), str(tmp_path / "cache"))
