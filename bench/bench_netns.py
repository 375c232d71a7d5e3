"""Every namespace's conntrack numbers at 200 namespaces, beside what operators run today.

Makes 100 namespaces held only by a bind mount (``ip netns add``, as OpenStack
routers are) and 100 held only by a process (``unshare --net``, as containers
are), each with a few real tracked flows, then prints side by side in one run:

- ``netns.survey()`` (what ``conntrack.namespaces`` does): every namespace, its
  count, drops and owner, no table walk;
- ``ip -all netns exec cat .../nf_conntrack_count``: the operator's loop, which
  sees only the bind-mounted half;
- ``nsenter -t PID -n conntrack -C`` per process-held namespace: the other half.

Everything made is removed at the end. In short mode (``BENCH_MODE=short``,
see bench/timing.py): 20 namespaces, one repetition.

    BENCH_NAMESPACES=50 .venv/bin/python bench/bench_netns.py
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_utils"))

from bench.timing import size, timed
from saltext_conntrack.runtime import namespaces
from tests.support.kernel import Netns, kernel_unavailable_reason

HALF = int(os.environ.get("BENCH_NAMESPACES", size(200, 20))) // 2
_HOLD = (
    "import socket,subprocess,time;"
    "subprocess.run(['ip','link','set','lo','up']);"
    "subprocess.run(['nft','add table inet b; add chain inet b o { type filter hook output priority 0; }; "
    "add rule inet b o ct state new counter']);"
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);[s.sendto(b'x',('127.0.0.1',p)) for p in range(9000,9003)];"
    "print('ready',flush=True);time.sleep(600)"
)


def main():
    reason = kernel_unavailable_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    mounted, held = [], []
    try:
        for _ in range(HALF):
            ns = Netns(prefix="bench").create()
            mounted.append(ns)
            ns.udp_flows(3)
        for _ in range(HALF):
            proc = subprocess.Popen(
                ["unshare", "--net", sys.executable, "-c", _HOLD], stdout=subprocess.PIPE, text=True
            )
            held.append(proc)
            proc.stdout.readline()
        rows = namespaces.survey("/", "nf_conntrack", 262144)
        ours = timed(lambda: namespaces.survey("/", "nf_conntrack", 262144))
        ip_all = timed(
            lambda: subprocess.run(
                ["ip", "-all", "netns", "exec", "cat", "/proc/sys/net/netfilter/nf_conntrack_count"],
                capture_output=True,
                check=False,
            ),
            repeat=3,
        )
        nsenter = timed(
            lambda: [
                subprocess.run(["nsenter", "-t", str(p.pid), "-n", "conntrack", "-C"], capture_output=True, check=False)
                for p in held
            ],
            repeat=3,
        )
        seen = sum(1 for r in rows if r["count"] is not None)
        print(f"namespaces found: {len(rows)} (made {2 * HALF}), with numbers: {seen}")
        print(f"netns.survey(), all of them:              {ours * 1000:8.1f} ms")
        print(
            f"ip -all netns exec cat count ({HALF} mounted): {ip_all * 1000:8.1f} ms  ratio ours/it {ours / ip_all:.3f}"
        )
        print(
            f"nsenter ... conntrack -C ({HALF} held):       {nsenter * 1000:8.1f} ms  ratio ours/it {ours / nsenter:.3f}"
        )
        return 0
    finally:
        for proc in held:
            proc.kill()
            proc.wait(10)
        for ns in mounted:
            ns.delete()


if __name__ == "__main__":
    sys.exit(main())
