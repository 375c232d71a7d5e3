"""status() and summary() against a table of 1,000,000 real entries.

Fills a network namespace of its own with real UDP flows on loopback (the
global nf_conntrack_max and hashsize are raised for the run and restored
after), then prints, side by side in one run:

- status() in-process, against `wc -l` of the table file and `conntrack -C`;
- summary() as a ratio to `cat` of the table file into /dev/null (the
  kernel's own floor: it has to walk every entry) and to `conntrack -L`;
- the peak memory growth (RSS high-water mark) of summary().

Targets: status() under 1 ms; summary() within 1.3x of the floor; memory
growth under 64 MB.
"""

import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.support.kernel import GLOBAL_KNOBS, Netns, kernel_unavailable_reason, saved_globals, write_int  # noqa: E402
from tests.support.loaderfile import load  # noqa: E402

ENTRIES = int(os.environ.get("BENCH_ENTRIES", "1000000"))
ct = load("_modules/conntrack.py")
ct.__opts__ = {"conntrack.root": "/"}
ct.__grains__ = {"kernel": "Linux"}


def timed(fn, repeat):
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def shell(cmd):
    return lambda: subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


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


def main():
    reason = kernel_unavailable_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    with saved_globals() as saved, Netns("ctbench") as ns:
        write_int(GLOBAL_KNOBS[0], max(saved[GLOBAL_KNOBS[0]], ENTRIES + 10000))
        write_int(GLOBAL_KNOBS[1], max(saved[GLOBAL_KNOBS[1]], ENTRIES // 2))
        start = time.perf_counter()
        hosts = (ENTRIES + 45535) // 45536
        made = ns.udp_flows(ENTRIES, first_port=20000, dst_hosts=hosts)
        print(f"filled {made} entries in {time.perf_counter() - start:.1f} s")
        with ns.entered():
            count = ct.status()["count"]
            print(f"status() count = {count}")
            t_status = timed(ct.status, 200)
            t_wc = timed(shell("wc -l /proc/net/nf_conntrack"), 3)
            t_ctc = timed(shell("conntrack -C"), 3)
            t_cat = timed(shell("cat /proc/net/nf_conntrack > /dev/null"), 3)
            t_ctl = timed(shell("conntrack -L > /dev/null"), 3)
            t_summary = timed(ct.summary, 3)
            growth = peak_growth_mb(ct.summary)
            total = ct.summary()["total"]
        print(f"entries in table: {count}, summary() total: {total}")
        print(f"status()        {t_status * 1e3:9.3f} ms   (target < 1 ms)")
        print(f"  wc -l table   {t_wc * 1e3:9.1f} ms   status() is {t_wc / t_status:,.0f}x faster")
        print(f"  conntrack -C  {t_ctc * 1e3:9.1f} ms   status() is {t_ctc / t_status:,.0f}x faster")
        print(f"summary()       {t_summary * 1e3:9.1f} ms")
        print(f"  cat (floor)   {t_cat * 1e3:9.1f} ms   ratio {t_summary / t_cat:.2f}x (target <= 1.3x)")
        print(f"  conntrack -L  {t_ctl * 1e3:9.1f} ms   ratio {t_summary / t_ctl:.2f}x")
        print(f"summary() peak RSS growth {growth:.1f} MB (target < 64 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
