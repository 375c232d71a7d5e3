"""The one verdict: ``conntrack.check``, the fleet runner and the beacon all use it.

A status (``conntrack.status``'s dict, or a mine copy of it) gets a level and
the reasons, by the same rules and the same words wherever it is judged.
"""

import math

from salt.exceptions import SaltInvocationError

from saltext_conntrack.common import numbers

RANK = {"ok": 0, "unknown": 1, "warning": 2, "critical": 3}
COUNTERS = ("drop", "early_drop", "insert_failed")
# The parts of a status whose source it names (``status["source"]``).
PARTS = ("count", "max", "stats")


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
        raise ValueError(f"{what} is not a count: {value!r}"[:200])
    return value


def validated(status):
    """The parts of a status the verdict reads, checked; ValueError when malformed.

    A status from the mine comes from a minion: it is data, never trusted to
    have the right shape.
    """
    if not isinstance(status, dict):
        raise ValueError(f"not a conntrack.status: {status!r}"[:200])
    stats = status.get("stats")
    if stats is not None and not isinstance(stats, dict):
        raise ValueError("stats is not a mapping")
    clean = {
        "count": _count(status.get("count"), "count"),
        "max": _count(status.get("max"), "max"),
        "stats": None if stats is None else {name: _count(stats.get(name, 0), name) for name in COUNTERS},
        "recent": None,
    }
    if stats is None:
        clean["unknown"] = {"stats": str(unknown_reason(status))[:500]}
    recent = status.get("recent")
    if recent is not None:
        seconds = recent.get("seconds") if isinstance(recent, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
            raise ValueError(f"recent is malformed: {recent!r}"[:200])
        clean["recent"] = {name: _count(recent.get(name, 0), f"recent {name}") for name in COUNTERS}
        clean["recent"]["seconds"] = seconds
    return clean


def assess(status, warning=75, critical=90):
    """``{"verdict", "reasons", "usage"}`` for one status.

    Usage raises the verdict by the thresholds. Drops raise it only while they
    are current: ``status["recent"]`` (the counters' rise since an earlier
    sample, and the seconds it covers) decides; drops since boot alone are a
    note, so a host that overflowed once goes back to ``ok``. Without a
    ``recent`` block (the first sample, or a status from an older minion) the
    counters since boot are all there is, and they count as current.
    """
    count, maximum = status["count"], status["max"]
    usage = round(100.0 * count / maximum, 2) if maximum else 0.0
    level = usage_level(usage, warning, critical)
    reasons = []
    if level != "ok":
        limit = critical if level == "critical" else warning
        reasons.append(f"usage {usage}% ({count}/{maximum}) is at or above {limit}%")
    stats = status.get("stats")
    if stats is None:
        # No source could read the counters: say so, never "no drops".
        reasons.append(f"drops unknown: {unknown_reason(status)}")
        return {"verdict": worst([level, "unknown"]), "reasons": reasons, "usage": usage}
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


def unknown_reason(status):
    """Why a status has no counters (its ``unknown`` block), in a few words."""
    unknown = status.get("unknown")
    reason = unknown.get("stats") if isinstance(unknown, dict) else None
    return reason or "no source could read the drop counters"


def thresholds(warning, critical):
    """The usage thresholds of ``conntrack.check``, checked: percents, warning not above critical."""
    warning = numbers.number(warning, "warning", 0, 100)
    critical = numbers.number(critical, "critical", 0, 100)
    if warning > critical:
        raise SaltInvocationError(f"warning ({warning}) must not be above critical ({critical})")
    return warning, critical


def checked(status, warning, critical):
    """``conntrack.check``'s answer: the verdict with the numbers it was judged on."""
    judged = assess(status, warning, critical)
    return {
        **judged,
        "count": status["count"],
        "max": status["max"],
        "drop": None if status["stats"] is None else status["stats"].get("drop", 0),
        "early_drop": None if status["stats"] is None else status["stats"].get("early_drop", 0),
        "recent": status["recent"],
        "source": status.get("source"),
    }
