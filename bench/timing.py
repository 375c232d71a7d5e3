"""The one timer of the benchmarks: the median of repeated runs."""

import statistics
import time


def timed(fn, repeat=5):
    """Median seconds of ``repeat`` calls of ``fn``."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)
