"""The one verdict: ``conntrack.check``, the fleet runner and the beacon all use it.

A status (``conntrack.status``'s dict, or a mine copy of it) gets a level and
the reasons, by the same rules and the same words wherever it is judged.
"""

import math

from salt.exceptions import SaltInvocationError

from saltext_conntrack.common import numbers

RANK = {"ok": 0, "unknown": 1, "warning": 2, "critical": 3}
COUNTERS = ("drop", "early_drop", "insert_failed")
# Seconds to full at the current rise that make the verdict warning / critical.
FULL_IN_WARNING = 900
FULL_IN_CRITICAL = 120


def usage_level(usage, warning, critical):
    """``ok``, ``warning`` or ``critical`` for a usage percent; a threshold of None is off."""
    if critical is not None and usage >= critical:
        return "critical"
    if warning is not None and usage >= warning:
        return "warning"
    return "ok"


def worst(levels):
    return max(levels, key=RANK.__getitem__, default="ok")


def _count(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} is not a count: {numbers.shown(value)}")
    return value


def validated(status):
    """The parts of a status the verdict reads, checked; ValueError when malformed.

    A status from the mine comes from a minion: it is data, never trusted to
    have the right shape.
    """
    if not isinstance(status, dict):
        raise ValueError(f"not a conntrack.status: {numbers.shown(status)}")
    stats = status.get("stats") or {}
    if not isinstance(stats, dict):
        raise ValueError("stats is not a mapping")
    clean = {
        "count": _count(status.get("count"), "count"),
        "max": _count(status.get("max"), "max"),
        "stats": {name: _count(stats.get(name, 0), name) for name in COUNTERS},
        "recent": None,
    }
    recent = status.get("recent")
    if recent is not None:
        seconds = recent.get("seconds") if isinstance(recent, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
            raise ValueError(f"recent is malformed: {numbers.shown(recent)}")
        clean["recent"] = {name: _count(recent.get(name, 0), f"recent {name}") for name in COUNTERS}
        clean["recent"]["seconds"] = seconds
    clean["trend"] = _trend(status.get("trend"))
    return clean


def _finite(value):
    return value is None or (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value))


def _trend(trend):
    """The parts of a ``trend`` the verdict reads; None when absent (an older minion)."""
    if trend is None:
        return None
    keys = ("full_in", "count_per_s", "seconds")
    if not isinstance(trend, dict) or not all(_finite(trend.get(k)) for k in keys):
        raise ValueError(f"trend is malformed: {trend!r}"[:200])
    return {k: trend.get(k) for k in keys}


def filling_level(trend, full_in_warning=FULL_IN_WARNING, full_in_critical=FULL_IN_CRITICAL):
    """``ok``, ``warning`` or ``critical`` for a trend's ``full_in``; a threshold of None is off."""
    full_in = (trend or {}).get("full_in")
    if full_in is None:
        return "ok"
    # Sooner is worse: the usage rule on negated seconds.
    return usage_level(-full_in, *(None if t is None else -t for t in (full_in_warning, full_in_critical)))


def _filling_reason(status, level, full_in_warning, full_in_critical):
    trend = status["trend"]
    limit = full_in_critical if level == "critical" else full_in_warning
    if trend["full_in"] == 0:
        return None  # full now: usage and drops say it
    return (
        f"the table is full in {words(trend['full_in'])} at the current rise of {trend['count_per_s']} entries/s "
        f"({status['count']}/{status['max']}, fitted over {trend['seconds']} s), within the {words(limit)} "
        f"that make it {level}: find what opens the flows (conntrack.diagnose) or raise the limit before then"
    )


def words(seconds):
    """Seconds in words for a reason line: "42 s", "4 min 10 s", "3 h 2 min"."""
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 120:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def assess(status, warning=75, critical=90, full_in_warning=FULL_IN_WARNING, full_in_critical=FULL_IN_CRITICAL):
    """``{"verdict", "reasons", "usage"}`` for one status.

    Usage raises the verdict by the thresholds. Drops raise it only while they
    are current: ``status["recent"]`` (the counters' rise since an earlier
    sample, and the seconds it covers) decides; drops since boot alone are a
    note, so a host that overflowed once goes back to ``ok``. Without a
    ``recent`` block (the first sample, or a status from an older minion) the
    counters since boot are all there is, and they count as current.
    A ``trend`` whose ``full_in`` is within ``full_in_warning`` or
    ``full_in_critical`` seconds raises it too: the table fills at that rise.
    """
    count, maximum = status["count"], status["max"]
    usage = round(100.0 * count / maximum, 2) if maximum else 0.0
    stats = status.get("stats") or {}
    level = usage_level(usage, warning, critical)
    reasons = []
    if level != "ok":
        limit = critical if level == "critical" else warning
        reasons.append(f"usage {usage}% ({count}/{maximum}) is at or above {limit}%")
    filling = filling_level(status.get("trend"), full_in_warning, full_in_critical)
    reason = _filling_reason(status, filling, full_in_warning, full_in_critical) if filling != "ok" else None
    if reason:
        level = worst([level, filling])
        reasons.append(reason)
    recent = status.get("recent")
    total, total_early = stats.get("drop", 0), stats.get("early_drop", 0)
    if recent is None:
        drop, early, span = total, total_early, "since boot (no earlier sample to compare with)"
    else:
        drop, early = recent.get("drop", 0), recent.get("early_drop", 0)
        span = f"in the last {recent['seconds']} s"
    if drop:
        level = worst([level, "critical"])
        reasons.append(f"{drop} packets dropped {span} because the table was full (stat drop; {total} since boot)")
    if early:
        level = worst([level, "warning"])
        reasons.append(
            f"{early} entries evicted early {span}: the table was at its limit "
            f"(stat early_drop; {total_early} since boot)"
        )
    if recent is not None and not drop and total:
        reasons.append(f"no drops {span}; the {total} since boot are past")
    if not reasons:
        reasons.append(f"usage {usage}% ({count}/{maximum}), no drops")
    return {"verdict": level, "reasons": reasons, "usage": usage}


def thresholds(warning, critical, full_in_warning=FULL_IN_WARNING, full_in_critical=FULL_IN_CRITICAL):
    """The thresholds of ``conntrack.check``, checked: percents, seconds, warning not past critical."""
    warning = numbers.number(warning, "warning", 0, 100)
    critical = numbers.number(critical, "critical", 0, 100)
    if warning > critical:
        raise SaltInvocationError(f"warning ({warning}) must not be above critical ({critical})")
    named = ((full_in_warning, "full_in_warning"), (full_in_critical, "full_in_critical"))
    fills = [None if v is None else numbers.number(v, name, 0, 10**8) for v, name in named]
    if None not in fills and fills[0] < fills[1]:
        raise SaltInvocationError(f"full_in_warning ({fills[0]}) must not be below full_in_critical ({fills[1]})")
    return warning, critical, *fills


def limit_note(status, recommend):
    """Why ``check`` can say ok while ``recommend`` says needs_change, or None when they agree."""
    wanted = (recommend or {}).get("max")
    if not (recommend or {}).get("needs_change") or not wanted or status["max"] >= wanted:
        return None
    return (
        f"the limit {status['max']} is below the {wanted} conntrack.recommend sizes for this host's RAM: "
        "check judges the table now (act on its verdict first), recommend sizes it for the worst day "
        "(apply it with conntrack.tuned before that day)"
    )


def checked(
    status, warning, critical, full_in_warning=FULL_IN_WARNING, full_in_critical=FULL_IN_CRITICAL, recommend=None
):
    """``conntrack.check``'s answer: the verdict with the numbers it was judged on."""
    judged = assess(status, warning, critical, full_in_warning, full_in_critical)
    note = limit_note(status, recommend)
    return {
        **judged,
        "count": status["count"],
        "max": status["max"],
        "drop": status["stats"].get("drop", 0),
        "early_drop": status["stats"].get("early_drop", 0),
        "recent": status["recent"],
        "trend": status.get("trend"),
        "notes": [note] if note else [],
    }
