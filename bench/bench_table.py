"""status() and summary() against a table of 1,000,000 real entries.

Fills a network namespace of its own with real UDP flows on loopback (the
global nf_conntrack_max and hashsize are raised for the run and restored
after), then prints, side by side in one run:

- status() in-process, against `wc -l` of the table file and `conntrack -C`;
- summary() as a ratio to `cat` of the table file into /dev/null (the
  kernel's own floor: it has to walk every entry) and to `conntrack -L`;
- the peak memory growth (RSS high-water mark) of summary();
- diagnose() (the same pass plus the findings) against the same floor, and
  diagnose(sample=N): its cost, and its error against the full walk;
- the budget: diagnose(timeout=1) and the default (bounded, 5 s) call,
  wall time and the share of the table they read.

The whole-table figures pass timeout=0 (no budget), so they time the full walk.

The table is 70% UDP flows to many ports and 30% unreplied queries to udp/53
from distinct source ports (what a DNS flood leaves), so diagnose has a
finding to make and the sample an error to measure.

Targets: status() under 1 ms; summary() and diagnose() within 1.3x of the
floor; memory growth under 64 MB; diagnose(timeout=1) back within 2 s. In short mode (``BENCH_MODE=short``, see
bench/timing.py): 20,000 entries, a sample of 5,000, one repetition.

    BENCH_ENTRIES=200000 BENCH_SAMPLE=20000 .venv-3008/bin/python bench/bench_table.py
"""

import fcntl
import os
import resource
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.timing import size, target, timed, verdict
from tests.support.kernel import GLOBAL_KNOBS, Netns, kernel_unavailable_reason, saved_globals, write_int
from tests.support.loaderfile import execution_modules

ENTRIES = int(os.environ.get("BENCH_ENTRIES", size(1_000_000, 20_000)))
SAMPLE = int(os.environ.get("BENCH_SAMPLE", size(100_000, 5_000)))
ct = execution_modules({"conntrack.root": "/"}, {"kernel": "Linux"}, prefix="bench_table")["conntrack"]
LOCK = "/tmp/saltext-conntrack-kernel-tests.lock"  # the kernel tier's: one user of the global max at a time


def shell(cmd):
    return lambda: subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cpu_of(fn):
    """(parser CPU s, table-walk CPU s): this process's, and the cat child's, where the kernel walks.

    Under load the wall-clock ratio measures the scheduler too; these two say
    whether parsing keeps up with the walk (the parse hides behind the walk
    while it costs less CPU).
    """
    own, kids = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    fn()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() - own, (after.ru_utime + after.ru_stime) - (kids.ru_utime + kids.ru_stime)


def rss_kb(field):
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def peak_growth_mb(fn):
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0+).
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")
    before = rss_kb("VmRSS")
    fn()
    return (rss_kb("VmHWM") - before) / 1024


def dns_queries(ns, count):
    """``count`` unreplied queries to 127.0.0.1:53, each from its own source address and port."""
    made = 0
    with ns.entered():
        for host in range(2, 250):
            for sport in range(10000, 60000):
                if made == count:
                    return made
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.bind((f"127.0.1.{host}", sport))
                    sock.sendto(b"q", ("127.0.0.1", 53))
                made += 1
    return made


def udp_share(result):
    found = {f["id"]: f for f in result["findings"]}
    udp = found.get("unreplied_udp_port")
    return udp["evidence"]["share"] if udp else 0.0


def summary_all():
    return ct.summary(timeout=0)


def diagnose_all():
    return ct.diagnose(timeout=0)


def budget_report(count):
    """Lines on the time budget: diagnose(timeout=1) and the default call, wall time and share read."""
    lines = []
    for label, kwargs, limit in (("diagnose(timeout=1)", {"timeout": 1}, 2.0), ("diagnose()", {}, None)):
        start = time.perf_counter()
        walk = ct.diagnose(**kwargs)["walk"]
        took = time.perf_counter() - start
        judged = target(took, limit, f"{label} < {limit:g} s") if limit else "(default budget 5 s)"
        lines.append(
            f"{label:<20} {took * 1e3:9.1f} ms   {judged} complete={walk['complete']} "
            f"stopped={walk['stopped']} read {walk['entries']} of {count} ({walk['share']}%)"
        )
    return lines


def sample_report(t_cat, full):
    """Lines on the sampled mode: its cost against the full floor, its error against the full walk."""
    t_sample = timed(lambda: ct.diagnose(sample=SAMPLE, timeout=0), 3)
    part = ct.diagnose(sample=SAMPLE, timeout=0)
    full_ids = sorted(f["id"] for f in full["findings"])
    part_ids = sorted(f["id"] for f in part["findings"])
    return [
        f"diagnose(sample={SAMPLE}) {t_sample * 1e3:9.1f} ms   {t_sample / t_cat:.2f}x the full walk's floor, "
        f"read {part['walk']['entries']} of {part['walk']['count']} entries",
        f"  udp/53 share: sample {udp_share(part):.3f}, full walk {udp_share(full):.3f} "
        f"(error {abs(udp_share(part) - udp_share(full)):.3f})",
        f"  findings: sample {part_ids}, full walk {full_ids}: {'same' if part_ids == full_ids else 'DIFFERENT'}",
    ]


def under_kernel_lock(measure):
    """``measure()`` holding the kernel tier's lock (it changes the global max), or a skip line."""
    reason = kernel_unavailable_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    with open(LOCK, "w", encoding="ascii") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return measure()


def main():
    return under_kernel_lock(measure)


def measure():
    with saved_globals() as saved, Netns("ctbench") as ns:
        write_int(GLOBAL_KNOBS[0], max(saved[GLOBAL_KNOBS[0]], ENTRIES + 10000))
        write_int(GLOBAL_KNOBS[1], max(saved[GLOBAL_KNOBS[1]], ENTRIES // 2))
        start = time.perf_counter()
        queries = ENTRIES * 3 // 10
        hosts = (ENTRIES - queries + 45535) // 45536
        made = ns.udp_flows(ENTRIES - queries, first_port=20000, dst_hosts=hosts) + dns_queries(ns, queries)
        print(f"filled {made} entries in {time.perf_counter() - start:.1f} s")
        with ns.entered():
            count = ct.status()["count"]
            print(f"status() count = {count}")
            t_status = timed(ct.status, 200)
            t_wc = timed(shell("wc -l /proc/net/nf_conntrack"), 3)
            t_ctc = timed(shell("conntrack -C"), 3)
            t_cat = timed(shell("cat /proc/net/nf_conntrack > /dev/null"), 3)
            t_ctl = timed(shell("conntrack -L > /dev/null"), 3)
            t_summary = timed(summary_all, 3)
            growth = peak_growth_mb(summary_all)
            total = summary_all()["total"]
            t_diag = timed(diagnose_all, 3)
            full = diagnose_all()
            d_growth = peak_growth_mb(diagnose_all)
            sampled = sample_report(t_cat, full)
            budget = budget_report(count)
            cpu = {
                name: min((cpu_of(fn) for _ in range(size(3, 1))), key=sum)
                for name, fn in (("summary()", summary_all), ("diagnose()", diagnose_all))
            }
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"entries in table: {count}, summary() total: {total}")
        print(f"status()        {t_status * 1e3:9.3f} ms   {target(t_status, 1e-3, 'status() < 1 ms')}")
        print(f"  wc -l table   {t_wc * 1e3:9.1f} ms   status() is {t_wc / t_status:,.0f}x faster")
        print(f"  conntrack -C  {t_ctc * 1e3:9.1f} ms   status() is {t_ctc / t_status:,.0f}x faster")
        print(f"summary()       {t_summary * 1e3:9.1f} ms")
        print(
            f"  cat (floor)   {t_cat * 1e3:9.1f} ms   ratio {t_summary / t_cat:.2f}x "
            f"{target(t_summary / t_cat, 1.3, 'summary() <= 1.3x the cat floor')}"
        )
        print(f"  conntrack -L  {t_ctl * 1e3:9.1f} ms   ratio {t_summary / t_ctl:.2f}x")
        print(f"summary() peak RSS growth {growth:.1f} MB {target(growth, 64, 'summary() growth < 64 MB')}")
        print(
            f"diagnose()      {t_diag * 1e3:9.1f} ms   ratio {t_diag / t_cat:.2f}x the cat floor "
            f"{target(t_diag / t_cat, 1.3, 'diagnose() <= 1.3x the cat floor')}"
        )
        print(f"  findings: {[(f['id'], f['severity']) for f in full['findings']]}")
        print(f"diagnose() peak RSS growth {d_growth:.1f} MB {target(d_growth, 64, 'diagnose() growth < 64 MB')}")
        print("\n".join(sampled))
        print("\n".join(budget))
        for name, (parse, walk) in cpu.items():
            print(f"{name} CPU: parse {parse:.2f} s, kernel walk (cat) {walk:.2f} s: parse/walk {parse / walk:.2f}")
    return verdict()


if __name__ == "__main__":
    sys.exit(main())
