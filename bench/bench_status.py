"""What ``status()`` costs now that it keeps a history of the drop counters.

Prints, in-process on this host (initial network namespace):
- ``status()`` without a cachedir (no history: the reads alone);
- ``status()`` with the history when nothing needs writing (same counters,
  last sample under a second old: one small JSON read);
- ``status()`` writing the history on every call (a rename over the file).
Target: under 1 ms each. In short mode (``BENCH_MODE=short``, see
bench/timing.py): a tenth of the calls, one repetition.

    .venv/bin/python bench/bench_status.py
"""

import os
import shutil
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "_utils"))

from bench.timing import size, target, verdict
from saltext_conntrack.runtime import history
from tests.support.loaderfile import execution_modules


def per_call_ms(fn, n=200):
    runs = []
    n = size(n, n // 10)
    for _ in range(size(5, 1)):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - start) / n * 1e3)
    return statistics.median(runs)


def main():
    if not os.path.exists("/proc/sys/net/netfilter/nf_conntrack_max"):
        print("skipped: this kernel has no nf_conntrack")
        return 0
    ct = execution_modules({"conntrack.root": "/"}, {"kernel": "Linux"}, prefix="bench_status")["conntrack"]
    cache = tempfile.mkdtemp(prefix="bench-status-")
    try:
        ct.__opts__ = {"conntrack.root": "/"}
        bare = per_call_ms(ct.status)
        ct.__opts__ = {"conntrack.root": "/", "cachedir": cache}
        ct.status()
        cached = per_call_ms(ct.status)
        gap, history.MIN_GAP = history.MIN_GAP, 0.0
        try:
            written = per_call_ms(ct.status, 100)
        finally:
            history.MIN_GAP = gap
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"status() without history        {bare:7.3f} ms   {target(bare, 1, 'status() < 1 ms')}")
    print(f"status() history read, no write {cached:7.3f} ms   {target(cached, 1, 'status(), history read < 1 ms')}")
    print(
        f"status() history written        {written:7.3f} ms   {target(written, 1, 'status(), history written < 1 ms')}"
    )
    return verdict()


if __name__ == "__main__":
    sys.exit(main())
