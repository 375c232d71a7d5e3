"""Namespaces only a process holds (``unshare --net``, as Docker and Kubernetes do), on the real kernel."""

import contextlib
import os
import subprocess
import sys
import time

from saltext_conntrack.runtime import kernel, namespaces
from tests.support.hostroot import build_host_root
from tests.support.kernel import PROC_NF, Netns, read_int, write_int

# Inside a fresh namespace: loopback up, tracking on, N UDP flows, then wait to be killed.
_INSIDE = """
import os, socket, subprocess, sys, time
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(["nft", "add table inet ctt; add chain inet ctt out { type filter hook output priority 0; }; "
                "add rule inet ctt out ct state new counter"], check=True)
subprocess.run(["sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=600"], check=True)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for port in range(20000, 20000 + int(sys.argv[1])):
    s.sendto(b"x", ("127.0.0.1", port))
print("ready", flush=True)
port = 30000
for line in sys.stdin:  # "N": try N new flows, answer how many the kernel accepted
    accepted = 0
    for _ in range(int(line)):
        port += 1
        try:
            s.sendto(b"x", ("127.0.0.1", port))
            accepted += 1
        except PermissionError:
            pass
    print(accepted, flush=True)
"""


@contextlib.contextmanager
def unshared(flows):
    proc = subprocess.Popen(
        ["unshare", "--net", sys.executable, "-c", _INSIDE, str(flows)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


def test_unshared_namespace_found_with_exact_count():
    with unshared(37) as proc:
        inode = os.stat(f"/proc/{proc.pid}/ns/net").st_ino
        started = time.perf_counter()
        rows = namespaces.survey("/", "nf_conntrack", 262144)
        elapsed = time.perf_counter() - started
        mine = [r for r in rows if r["inode"] == inode]
        assert len(mine) == 1, rows
        row = mine[0]
        assert row["names"] == [] and row["initial"] is False
        assert row["owner"]["pid"] == proc.pid
        assert row["count"] == 37 and row["drop"] == 0 and row["error"] is None
        assert sum(r["inode"] == inode for r in rows) == 1
    print(f"survey of {len(rows)} namespaces: {elapsed * 1000:.1f} ms")


def test_bind_mounted_namespace_read_through_setns(netns):
    assert netns.udp_flows(11) == 11
    rows = {r["inode"]: r for r in namespaces.survey("/", "nf_conntrack", 262144)}
    row = rows[netns.inode]
    assert row["names"] == [netns.path] and row["owner"] is None
    assert row["count"] == 11 and row["error"] is None


def test_one_thread_enters_each_bind_mount_and_a_failed_entry_reads_nothing(netns, tmp_path):
    not_a_namespace = tmp_path / "plain-file"
    not_a_namespace.write_text("")
    with Netns("ctt2") as other:
        assert netns.udp_flows(5) == 5 and other.udp_flows(9) == 9
        read = namespaces._through_setns("/", [netns.path, str(not_a_namespace), other.path], "nf_conntrack")
        rows = {r["inode"]: r for r in namespaces.survey("/", "nf_conntrack", 262144)}
    counts = {path: text and kernel.parse_stat(text)["entries"] for path, (text, _) in read.items()}
    # The failed setns left the thread in the first namespace: nothing was read there for the file.
    assert counts == {netns.path: 5, str(not_a_namespace): None, other.path: 9}
    assert "Errno" in read[str(not_a_namespace)][1]
    assert rows[netns.inode]["count"] == 5 and rows[other.inode]["count"] == 9


def _send(proc, flows):
    proc.stdin.write(f"{flows}\n")
    proc.stdin.flush()
    return int(proc.stdout.readline())


def test_full_unshared_namespace_named_by_the_beacon_and_confirms_remediation(make_loaders, global_knobs, tmp_path):
    """A namespace only a process holds fills up: the beacon names its process, and the
    remediation (which looks at every namespace, not only /run/netns) is confirmed by it."""
    beacons = make_loaders("/").beacons
    config = [{"source": "kmsg"}, {"min_interval": 0}, {"persist": False}]
    with unshared(20) as proc:
        inode = os.stat(f"/proc/{proc.pid}/ns/net").st_ino
        beacons["conntrack.beacon"](config)  # first run: the kmsg cursor starts at its end
        write_int(f"{PROC_NF}/nf_conntrack_max", 20)
        full, deadline = [], time.monotonic() + 20
        while not full and time.monotonic() < deadline:
            assert _send(proc, 3) == 0  # the table is full: every new flow is refused
            full = [e for e in beacons["conntrack.beacon"](config) if e["tag"] == "table_full"]
            time.sleep(0.5)
        assert full, "no table_full event within 20 s"
        ours = [n for n in full[0]["netns"] if n["inode"] == inode]
        assert ours and ours[0]["owner"]["pid"] == proc.pid, full[0]["netns"]
        assert ours[0]["name"] == f"pid {proc.pid} (python3)" or ours[0]["name"].startswith(f"pid {proc.pid} ")

        root = build_host_root(tmp_path / "root")
        rmod = make_loaders(root, cachedir=str(tmp_path / "cache")).modules
        ret = rmod.conntrack_remediate.remediate(cap=65536, fire_event=False)
        assert ret["remediated"] is True, ret
        assert any(f"pid {proc.pid}" in ev and "usage 100.0%" in ev for ev in ret["evidence"]), ret
        assert read_int(f"{PROC_NF}/nf_conntrack_max") == 65536
        assert _send(proc, 5) == 5  # tracked again
