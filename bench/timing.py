"""What every benchmark shares: the mode, the one timer, and the targets.

``BENCH_MODE=full`` (the default) runs at full size, repeats each timing and
judges each target: a missed one makes the benchmark exit 1.
``BENCH_MODE=short`` runs at small size with one repetition and only prints
the figures (beside their targets, unjudged), so that CI learns quickly that
a benchmark broke, not how fast this machine is.
"""

import os
import statistics
import sys
import time

MODE = os.environ.get("BENCH_MODE", "full")
if MODE not in ("full", "short"):
    raise SystemExit(f"BENCH_MODE={MODE!r}: use full (the default) or short")
SHORT = MODE == "short"
_MISSED = []


def size(full, short):
    """The full-mode figure, or the short one."""
    return short if SHORT else full


def timed(fn, repeat=5):
    """Median seconds of ``repeat`` calls of ``fn`` (one call in short mode)."""
    samples = []
    for _ in range(size(repeat, 1)):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def target(value, limit, text):
    """``(target text)`` for a figure's line; in full mode, remembers a figure over its limit."""
    if SHORT:
        return f"(target {text}, not judged in short mode)"
    if value <= limit:
        return f"(target {text})"
    _MISSED.append(text)
    return f"(target {text}: MISSED)"


def verdict():
    """The benchmark's exit status: 1 when a target was missed."""
    if _MISSED:
        print(f"missed targets: {', '.join(_MISSED)}", file=sys.stderr)
        return 1
    return 0
