"""How fast the table fills, and when it is full at that rise: ``conntrack.status``'s ``trend``.

The status history (``history``) keeps the count and the stat counter
``insert`` with every sample. A least-squares line through the samples of the
last ``window`` seconds gives the rise per second, robust to the noise of a
table that breathes (entries expire while new ones come) where the difference
of two samples is not. ``full_in`` is the seconds until the count meets the
limit on that line: null, with the reason in ``reason``, when the count is not
rising or the history is too short to say.
"""

# Fewer samples than this, or a shorter span, and a slope says nothing.
MIN_SAMPLES = 3
MIN_SPAN = 2.0
DEFAULT_WINDOW = 300  # status(window=0) compares with the last sample; the fit needs a span


def slope(points):
    """The least-squares slope of ``[(t, y), ...]`` (per second), or None for fewer than two times."""
    n = len(points)
    if n < 2:
        return None
    mean_t = sum(t for t, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var <= 0:
        return None
    return sum((t - mean_t) * (y - mean_y) for t, y in points) / var


def _rate(points):
    value = slope(points)
    return None if value is None else round(value, 3)


def _insert_rate(window):
    """New entries per second from the ``insert`` counter, and why not where it cannot say."""
    points = [(s[0], s[5]) for s in window if len(s) > 5 and s[5] is not None]
    if len(points) < len(window):
        return None, "the kernel has no insert counter here"
    if all(y == points[0][1] for _, y in points):
        # Recent kernels leave it at 0 (6.18 here: 100 new flows, insert still 0): no rate, not a rate of 0.
        return None, "the insert counter did not move: this kernel does not count inserts (recent ones leave it at 0)"
    return max(0.0, _rate(points)), None


def compute(samples, now, count, maximum, window):
    """``trend`` from the history ``samples`` (oldest first, the current reading last)."""
    window = window or DEFAULT_WINDOW
    recent = [s for s in samples if len(s) > 4 and s[0] >= now - window]
    seconds = round(recent[-1][0] - recent[0][0], 1) if recent else 0.0
    ret = {
        "count_per_s": None,
        "insert_per_s": None,
        "seconds": seconds,
        "samples": len(recent),
        "full_in": None,
        "reason": None,
    }
    if len(recent) < MIN_SAMPLES or seconds < MIN_SPAN:
        ret["reason"] = (
            f"too short a history: {len(recent)} sample(s) over {seconds} s in the last {window} s "
            f"(the trend needs {MIN_SAMPLES} over {MIN_SPAN:g} s; every status call adds one)"
        )
        return ret
    ret["count_per_s"] = _rate([(s[0], s[4]) for s in recent])
    ret["insert_per_s"], insert_reason = _insert_rate(recent)
    rise = ret["count_per_s"]
    if maximum and count >= maximum:
        ret["full_in"] = 0
        ret["reason"] = f"the table is full now ({count}/{maximum})"
    elif rise is None or rise <= 0:
        ret["reason"] = f"the count is not rising ({rise} entries/s over {seconds} s)"
    elif maximum:
        ret["full_in"] = round((maximum - count) / rise, 1)
        ret["reason"] = f"rising {rise} entries/s over {seconds} s: full in {ret['full_in']} s at that rise"
    if ret["reason"] is None:
        ret["reason"] = "no limit to reach (max is 0)"
    if insert_reason:
        ret["insert_reason"] = insert_reason
    return ret
