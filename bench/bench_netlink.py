"""The ctnetlink walk and counters against a table of 1,000,000 real entries.

What a host without the proc table (Ubuntu's kernels) pays. Fills a network
namespace of its own with real UDP flows on loopback (the global
nf_conntrack_max and hashsize raised for the run and restored after), then
prints, side by side in one run:

- the raw netlink dump (the floor): the same ``IPCTNL_MSG_CT_GET`` dump over
  the same kind of socket, a bare ``recv_into`` loop, nothing parsed;
- ``table.walk_netlink`` (what ``summary``/``diagnose`` run where the proc
  table is missing, given the count: the dump received by the pump child)
  as a ratio to that floor, the same walk receiving in-process, and
  ``summary()`` through the execution module on a root without ``proc/net``
  (``conntrack.netlink: true``);
- ``cat`` of the proc table and ``conntrack -L`` (which reads over netlink too);
- the netlink counters (``IPCTNL_MSG_CT_GET_STATS_CPU`` + ``_GET_STATS``)
  and ``status()`` answered from them, against ``conntrack -S``;
- the peak memory growth (RSS high-water mark) of the walk.

Targets: the walk within 1.3x of the raw dump; the counters under 1 ms;
memory growth under 64 MB. In short mode (``BENCH_MODE=short``, see
bench/timing.py): 20,000 entries, one repetition.

    BENCH_ENTRIES=200000 .venv-3008/bin/python bench/bench_netlink.py
"""

import os
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.bench_table import dns_queries, peak_growth_mb, shell, under_kernel_lock
from bench.timing import size, target, timed, verdict
from saltext_conntrack.runtime import netlink, netlink_walk, table
from tests.support.hostroot import build_procfs_less_root
from tests.support.kernel import GLOBAL_KNOBS, Netns, saved_globals, write_int
from tests.support.loaderfile import execution_modules

ENTRIES = int(os.environ.get("BENCH_ENTRIES", size(1_000_000, 20_000)))


def raw_dump():
    """The floor: the kernel's dump of the whole table into this process, nothing parsed. Bytes read."""
    sock = netlink.open_socket()
    try:
        sock.send(netlink.request(netlink.MSG_GET, netlink.NLM_F_REQUEST | netlink.NLM_F_DUMP, 7))
        buf = bytearray(netlink.RCVBUF)
        total = 0
        while True:
            n = sock.recv_into(buf)
            total += n
            # The dump ends with NLMSG_DONE (20 bytes), the last message of the last datagram.
            if n >= 20 and buf[n - 20] == 20 and buf[n - 16] == netlink.NLMSG_DONE and buf[n - 12] & 2:
                return total
    finally:
        sock.close()


def walked():
    """The walk as summary and diagnose call it: with the count, so a large table is received by the pump child."""
    sock = netlink.open_socket()
    try:
        return table.walk_netlink(sock, top=10, expected=netlink.global_stats(sock)["count"])
    finally:
        sock.close()


def walked_in_process():
    """The same walk receiving in this process (what a table under PUMP_FROM entries gets)."""
    sock = netlink.open_socket()
    try:
        return table.walk_netlink(sock, top=10)
    finally:
        sock.close()


def pump_peak_mb():
    """The pump child's own peak RSS during one walk, in MB (its VmHWM, read while it runs).

    Not the children's ru_maxrss: that counts the parent's pages a child had
    between fork and exec.
    """
    peak = [0]
    real_start = netlink_walk._start_pump

    def watch(pid):
        while True:
            try:
                with open(f"/proc/{pid}/status", encoding="ascii") as fh:
                    hwm = next((int(line.split()[1]) for line in fh if line.startswith("VmHWM:")), None)
            except OSError:
                return
            if hwm is None:  # exited, a zombie
                return
            peak[0] = max(peak[0], hwm)
            time.sleep(0.01)

    def start(sock):
        child = real_start(sock)
        if child is not None:
            threading.Thread(target=watch, args=(child.pid,), daemon=True).start()
        return child

    netlink_walk._start_pump = start
    try:
        walked()
    finally:
        netlink_walk._start_pump = real_start
    return peak[0] / 1024


def counters():
    sock = netlink.open_socket()
    try:
        return netlink.cpu_stats(sock), netlink.global_stats(sock)
    finally:
        sock.close()


def main():
    return under_kernel_lock(measure)


def fill(ns):
    queries = ENTRIES * 3 // 10
    hosts = (ENTRIES - queries + 45535) // 45536
    return ns.udp_flows(ENTRIES - queries, first_port=20000, dst_hosts=hosts) + dns_queries(ns, queries)


def measure():
    hidden = build_procfs_less_root(os.path.join(tempfile.mkdtemp(prefix="ctbench-root-"), "root"))
    ct = execution_modules({"conntrack.root": hidden, "conntrack.netlink": True}, {"kernel": "Linux"}, "bench_nl")
    ct = ct["conntrack"]
    with saved_globals() as saved, Netns("ctbnl") as ns:
        write_int(GLOBAL_KNOBS[0], max(saved[GLOBAL_KNOBS[0]], ENTRIES + 10000))
        write_int(GLOBAL_KNOBS[1], max(saved[GLOBAL_KNOBS[1]], ENTRIES // 2))
        start = time.perf_counter()
        made = fill(ns)
        print(f"filled {made} entries in {time.perf_counter() - start:.1f} s")
        with ns.entered():
            st = ct.status()
            t_counters = timed(counters, 200)
            t_status = timed(ct.status, 200)
            t_cts = timed(shell("conntrack -S"), 3)
            t_raw = timed(raw_dump, 3)
            t_walk = timed(walked, 3)
            child_mb = pump_peak_mb()
            t_alone = timed(walked_in_process, 3)
            t_summary = timed(ct.summary, 3)
            t_cat = timed(shell("cat /proc/net/nf_conntrack > /dev/null"), 3)
            t_ctl = timed(shell("conntrack -L > /dev/null"), 3)
            growth = peak_growth_mb(walked)
            total, nbytes = walked().total, raw_dump()
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"entries in table: {st['count']} (source {st['source']}), walk total: {total}, dump {nbytes} bytes")
        print(f"netlink counters {t_counters * 1e3:8.3f} ms   {target(t_counters, 1e-3, 'netlink counters < 1 ms')}")
        print(f"status() (netlink stats) {t_status * 1e3:.3f} ms; conntrack -S {t_cts * 1e3:.1f} ms")
        print(f"raw dump (floor) {t_raw * 1e3:8.1f} ms")
        ratio = t_walk / t_raw
        print(f"walk_netlink     {t_walk * 1e3:8.1f} ms   ratio {ratio:.2f}x {target(ratio, 1.3, 'walk <= 1.3x raw')}")
        print(f"  received in-process {t_alone * 1e3:8.1f} ms   ratio {t_alone / t_raw:.2f}x (no pump child)")
        print(f"summary()        {t_summary * 1e3:8.1f} ms   ratio {t_summary / t_raw:.2f}x the raw dump")
        print(f"  cat proc table {t_cat * 1e3:8.1f} ms   walk is {t_walk / t_cat:.2f}x")
        print(f"  conntrack -L   {t_ctl * 1e3:8.1f} ms   walk is {t_walk / t_ctl:.2f}x")
        print(f"walk peak RSS growth {growth:.1f} MB {target(growth, 64, 'walk growth < 64 MB')}")
        print(f"  the pump child's peak RSS {child_mb:.1f} MB (its own process: Python started with -I -S)")
    return verdict()


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    sys.exit(main())
