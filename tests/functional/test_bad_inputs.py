"""Bad inputs found by the outside battery after the refactor, one per class: each is a
clear error, and nothing changes on the fixture host (file bytes and the kernel knob)."""

import contextlib
import os
import signal
import stat

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.common import numbers
from saltext_conntrack.persistence import sysctl_boot
from saltext_conntrack.runtime import sizing
from tests.support.fixtures import build_root
from tests.support.loaderfile import load

ERRORS = (SaltInvocationError, CommandExecutionError)
MAX = "proc/sys/net/netfilter/nf_conntrack_max"


def snapshot(root):
    found = {}
    for top, _, files in os.walk(root):
        for name in files:
            path = os.path.join(top, name)
            if not os.path.islink(path):
                with open(path, "rb") as fh:
                    found[path] = fh.read()
    return found


@pytest.fixture
def host(tmp_path, make_loaders):
    root = build_root(tmp_path / "host", count=10, maximum=1000, buckets=1000)
    os.makedirs(os.path.join(root, "etc", "sysctl.d"))
    loaders = make_loaders(root, cachedir=str(tmp_path / "cache"))
    return root, loaders.modules


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.conntrack.set_max(999999999, force="ture"),  # a truthy string skipped every guard
        lambda m: m.conntrack.set_max(2000, test=0),
        lambda m: m.conntrack.set_buckets(2000, force=1),
        lambda m: m.conntrack.set_timeout(["tcp_established"], 60),  # raised TypeError
        lambda m: m.conntrack.set_timeout("udp", 60, test="ture"),
        lambda m: m.conntrack_files.persist_sysctl({"net.netfilter.nf_conntrack_max": 5000}, path=""),
        lambda m: m.conntrack_files.persist_sysctl({"net.netfilter.nf_conntrack_max": 5000}, path=False),
        lambda m: m.conntrack_files.module_options(["nf_conntrack", "xt_state"], {"hashsize": 1}),
        lambda m: m.conntrack_remediate.remediate(persist=False, sysctl_file="/etc/passwd", fire_event=False),
        lambda m: m.conntrack_remediate.remediate(persist=False, modprobe_file={"x": 1}, fire_event=False),
        lambda m: m.conntrack_fw.notrack_persist(
            [{"proto": "udp", "port": 53}], backend="iptables", path="/etc/nftables.d/x.nft"
        ),
        lambda m: m.conntrack_fw.notrack_persist(
            [{"proto": "udp", "port": 53}], backend="iptables", path="/etc/iptables/iptables.rules"
        ),  # Arch's own saved rules
        lambda m: m.conntrack_fw.notrack([{"proto": "tcp", "ports": list(range(1, 65536))}], backend="nft"),
        lambda m: m.conntrack_log.read_log("/proc/sys/net/netfilter/nf_conntrack_max", max_bytes=2**31),
        lambda m: m.conntrack.diagnose(timeout=-1),
        lambda m: m.conntrack.summary(timeout="soon"),
        lambda m: m.conntrack.check(full_in_warning=60, full_in_critical=120),
    ],
)
def test_refused_and_nothing_changed(host, call):
    root, mods = host
    before = snapshot(root)
    with pytest.raises(ERRORS):
        call(mods)
    assert snapshot(root) == before


def test_read_log_refuses_what_has_no_end(host, tmp_path):
    root, mods = host
    os.mkfifo(os.path.join(root, "fifo"))
    with pytest.raises(SaltInvocationError, match="not a regular file"):
        mods.conntrack_log.read_log("/fifo")


def test_number_rule_takes_no_unicode_space_and_ram_no_unicode_digits():
    for value in ("\u30005\u2003", "\x1c7\x85", "\u0665"):
        with pytest.raises(SaltInvocationError):
            numbers.integer(value, "x", 0, 100)
    with pytest.raises(SaltInvocationError):
        numbers.number("\x1c7.5\x85", "x", 0, 100)
    assert numbers.integer(" 42 ", "x", 0, 100) == 42
    with pytest.raises(SaltInvocationError):
        sizing.parse_ram("\u300064G")


def test_boot_values_ignore_a_link_out_of_the_root(tmp_path):
    outside = tmp_path / "outside.conf"
    outside.write_text("net.netfilter.nf_conntrack_max = 7\n")
    root = tmp_path / "root"
    (root / "etc" / "sysctl.d").mkdir(parents=True)
    (root / "etc" / "sysctl.d" / "90-x.conf").symlink_to(outside)
    (root / "etc" / "sysctl.d" / "80-y.conf").write_text("net.netfilter.nf_conntrack_max = 5\n")
    assert sysctl_boot.boot_values(str(root)) == {
        "net.netfilter.nf_conntrack_max": {"value": "5", "file": "/etc/sysctl.d/80-y.conf"}
    }


def test_runner_refuses_unhashable_verdict_and_bad_timeout():
    runner = load("_runners/conntrack.py", "unit_runner_bad_inputs")
    with pytest.raises(SaltInvocationError):
        runner._arguments("*", "glob", 75, 90, ["critical"], None)
    with pytest.raises(SaltInvocationError):
        runner._arguments([1, 2], "list", 75, 90, None, None)


@pytest.mark.parametrize(
    "call, what",
    [
        (lambda m: m.conntrack_files.module_options("a" * 150 + "!" + "z" * 150, {}), "is not a kernel module name"),
        (lambda m: m.conntrack_files.persist_sysctl({"x" * 5000: 1}), "not a conntrack sysctl key"),
        (lambda m: m.conntrack_files.persist_sysctl({"net.netfilter.nf_conntrack_max": 1}, path="x" * 5000), "characters long, at most 4096"),
    ],
)  # fmt: skip
def test_message_says_what_is_wrong_then_the_value_cut_in_the_middle(host, call, what):
    """Class: a long value never pushes the reason out of the message (cut in the middle, one helper)."""
    with pytest.raises(ERRORS) as err:
        call(host[1])
    text = str(err.value)
    assert what in text and text.index(what) < 120, text
    assert "\u2026" in text and len(text) < 400, text


# -- issue 18: what a local user can plant or log ----------------------------------------------


@contextlib.contextmanager
def no_hang(seconds=20):
    """Fail (instead of blocking the run for ever) when the call waits on a FIFO."""

    def hung(*_):
        raise TimeoutError("blocked: a FIFO was opened without O_NONBLOCK")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_textfile_never_writes_through_a_link_another_user_planted(host):
    """Class: written through a link. Before: success, and the link's target was overwritten."""
    root, mods = host
    os.makedirs(os.path.join(root, "var/lib/node"))
    victim = os.path.join(root, "etc/shadow")
    with open(victim, "w", encoding="utf-8") as fh:
        fh.write("root:x:\n")
    link = os.path.join(root, "var/lib/node/ct.prom")
    os.symlink(victim, link)
    os.lchown(link, 65534, 65534)  # the prometheus user's own link in its own textfile directory
    with pytest.raises(CommandExecutionError, match="owned by uid 65534, not by root: refused"):
        mods.conntrack.textfile(path="/var/lib/node/ct.prom", walk=False)
    with open(victim, encoding="utf-8") as fh:
        assert fh.read() == "root:x:\n"
    assert os.path.islink(link)


def test_textfile_refuses_a_fifo_and_a_directory_others_can_write(host):
    """Class: not regular files. Before: the FIFO at the target was replaced."""
    root, mods = host
    node = os.path.join(root, "var/lib/node")
    os.makedirs(node)
    os.mkfifo(os.path.join(node, "ct.prom"))
    with pytest.raises(CommandExecutionError, match="it is a FIFO, not a regular file"):
        mods.conntrack.textfile(path="/var/lib/node/ct.prom", walk=False)
    assert stat.S_ISFIFO(os.lstat(os.path.join(node, "ct.prom")).st_mode)
    os.chmod(node, 0o777)
    with pytest.raises(CommandExecutionError, match="can be written by users other than its owner"):
        mods.conntrack.textfile(path="/var/lib/node/other.prom", walk=False)
    assert os.listdir(node) == ["ct.prom"]


def test_a_fifo_as_a_sysctl_or_iptables_config_file_never_hangs(host):
    """Class: not regular files. Before: tuned/persist_sysctl and diagnose walk=False blocked for ever."""
    root, mods = host
    os.mkfifo(os.path.join(root, "etc/sysctl.d/90-conntrack.conf"))
    os.makedirs(os.path.join(root, "etc/sysconfig"))
    os.mkfifo(os.path.join(root, "etc/sysconfig/iptables-config"))
    with no_hang():
        with pytest.raises(CommandExecutionError, match="it is a FIFO, not a regular file"):
            mods.conntrack_files.persist_sysctl({"net.netfilter.nf_conntrack_max": 2000})
        found = mods.conntrack.diagnose(walk=False)
        drift = mods.conntrack.drift()
    assert isinstance(found["findings"], list) and isinstance(drift["differences"], list)
    assert stat.S_ISFIFO(os.lstat(os.path.join(root, "etc/sysctl.d/90-conntrack.conf")).st_mode)


def test_read_log_skips_a_huge_digit_run_and_counts_the_line_beside_it(host):
    """Class: bounded parsers. Before: ValueError (Exceeds the limit (4300 digits)), nothing counted."""
    root, mods = host
    os.makedirs(os.path.join(root, "var/log"))
    with open(os.path.join(root, "var/log/kern.log"), "w", encoding="ascii") as fh:
        fh.write("Nov 25 10:00:01 vm kernel: nf_conntrack: table full in netns " + "9" * 5000 + ", dropping packet\n")
        fh.write("Nov 25 10:00:02 vm kernel: nf_conntrack: table full, dropping packet\n")
        fh.write("Nov 25 10:00:03 vm kernel: printk: " + "9" * 5000 + " messages suppressed\n")
    ret = mods.conntrack_log.read_log("/var/log/kern.log")
    assert ret["matched"] == 1 and ret["suppressed"] == 0 and ret["netns"] == {"null": 1}


@pytest.mark.parametrize("text", ['{"last_reapply": "yesterday", "drops": 5}', "[" * 100000, "\xff"])
def test_a_corrupt_remediation_state_is_set_aside_not_a_traceback(host, tmp_path, text):
    """Class: own state. Before: a traceback or Salt's "Passed invalid arguments"."""
    _, mods = host
    state = tmp_path / "cache" / "conntrack" / "remediate.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(text, encoding="latin-1")
    ret = mods.conntrack_remediate.status()
    assert ret["baselines"] == {} and ret["last_remediation"] is None
    assert not state.exists() and any(p.name.startswith("remediate.json.corrupt-") for p in state.parent.iterdir())


def test_a_corrupt_drift_record_is_set_aside(host, tmp_path):
    _, mods = host
    record = tmp_path / "cache" / "conntrack" / "tuned.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text('{"set_at": 1e300, "values": {"net.netfilter.nf_conntrack_max": 5}}')
    ret = mods.conntrack.drift()  # before: OverflowError from time.gmtime(1e300)
    assert ret["recorded_at"] is None
    assert not record.exists()
