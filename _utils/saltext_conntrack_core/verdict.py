"""The one verdict: ``conntrack.check``, the fleet runner and the beacon all use it.

A status (``conntrack.status``'s dict, or a mine copy of it) gets a level and
the reasons, by the same rules and the same words wherever it is judged.
"""

RANK = {"ok": 0, "unknown": 1, "warning": 2, "critical": 3}


def usage_level(usage, warning, critical):
    """``ok``, ``warning`` or ``critical`` for a usage percent; a threshold of None is off."""
    if critical is not None and usage >= critical:
        return "critical"
    if warning is not None and usage >= warning:
        return "warning"
    return "ok"


def worst(levels):
    return max(levels, key=RANK.__getitem__, default="ok")


def assess(status, warning=75, critical=90):
    """``{"verdict", "reasons"}`` for one status.

    Usage raises the verdict by the thresholds. Drops raise it only while they
    are current: ``status["recent"]`` (the counters' rise since an earlier
    sample, and the seconds it covers) decides; drops since boot alone are a
    note, so a host that overflowed once goes back to ``ok``. Without a
    ``recent`` block (a status from an older minion) the counters since boot
    are all there is, and they count as current.
    """
    count, maximum = status["count"], status["max"]
    usage = round(100.0 * count / maximum, 2) if maximum else 0.0
    stats = status.get("stats") or {}
    level = usage_level(usage, warning, critical)
    reasons = []
    if level != "ok":
        limit = critical if level == "critical" else warning
        reasons.append(f"usage {usage}% ({count}/{maximum}) is at or above {limit}%")
    recent = status.get("recent")
    if recent is None:
        drop, early, span = stats.get("drop", 0), stats.get("early_drop", 0), "since boot"
    else:
        drop, early = recent.get("drop", 0), recent.get("early_drop", 0)
        span = f"in the last {recent['seconds']} s"
    if drop:
        level = worst([level, "critical"])
        reasons.append(f"{drop} packets dropped {span} because the table was full (stat drop)")
    if early:
        level = worst([level, "warning"])
        reasons.append(f"{early} entries evicted early {span}: the table was at its limit (stat early_drop)")
    if recent is not None and not drop and stats.get("drop"):
        reasons.append(f"no drops {span}; {stats['drop']} since boot, all earlier")
    if not reasons:
        reasons.append(f"usage {usage}% ({count}/{maximum}), no drops")
    return {"verdict": level, "reasons": reasons, "usage": usage}
