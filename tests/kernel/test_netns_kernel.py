"""Namespaces only a process holds (``unshare --net``, as Docker and Kubernetes do), on the real kernel."""

import contextlib
import os
import subprocess
import sys
import time

from saltext_conntrack_core import netns as nscore

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
time.sleep(120)
"""


@contextlib.contextmanager
def unshared(flows):
    proc = subprocess.Popen(
        ["unshare", "--net", sys.executable, "-c", _INSIDE, str(flows)],
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
        rows = nscore.survey("/", "nf_conntrack", 262144)
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
    rows = {r["inode"]: r for r in nscore.survey("/", "nf_conntrack", 262144)}
    row = rows[netns.inode]
    assert row["names"] == [netns.path] and row["owner"] is None
    assert row["count"] == 11 and row["error"] is None
