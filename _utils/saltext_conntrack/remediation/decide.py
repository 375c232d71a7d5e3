"""The remediation's decisions, from facts already gathered: nothing here reads
the host or changes it.

:py:func:`gate` says whether to act at all (initial netns, rate limit,
evidence); :py:func:`size` what to set once the incident is confirmed, so the
RAM formula is asked only then; :py:func:`reapply` whether drift is re-applied.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Decision:
    """Whether to act: ``refused`` is None to go on, else why not (``reason``).

    ``evaluated`` says the evidence was looked at, so the drop baselines may move.
    """

    refused: str | None
    reason: str = ""
    evidence: tuple = ()
    evaluated: bool = False


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to set: ``refused`` is ``at_ceiling`` (with ``reason``) when the max cannot grow."""

    current_max: int
    current_buckets: int
    new_max: int
    new_buckets: int
    ceiling: int
    recommendation: int
    refused: str | None = None
    reason: str = ""


def evidence(seen, baselines, threshold):
    """Sentences, one per confirming namespace: its drop counter rose since its
    baseline, or its usage is at or above ``threshold`` percent."""
    found = []
    for item in seen:
        previous = baselines.get(item["key"])
        if item["drop"] is not None and previous is not None and item["drop"] > previous:
            found.append(f"netns {item['name']}: drop counter rose from {previous} to {item['drop']}")
        if item["usage"] >= threshold:
            found.append(f"netns {item['name']}: usage {item['usage']}% >= {threshold}%")
    return found


def gate(status, seen, baselines, last, now, conf):
    """Act or refuse (``not_initial_netns``, ``rate_limited``, ``not_confirmed``)."""
    if not status.get("initial_netns"):
        return Decision(
            "not_initial_netns",
            "this minion runs outside the initial network namespace, where the "
            "global limit is read-only: remediate from the host",
        )
    interval = conf["interval"]
    if last is not None and now - last < interval:
        return Decision(
            "rate_limited",
            f"rate limited: last remediation {int(now - last)} s ago, at most one per "
            f"{interval} s (next allowed in {int(interval - (now - last)) + 1} s)",
        )
    found = tuple(evidence(seen, baselines, conf["threshold"]))
    if not found:
        blind = [item["name"] for item in seen if item["drop"] is None]
        drops = (
            f"drops unknown in {', '.join(blind)} (no source could read the counters: see conntrack.status)"
            if blind
            else "no drop counter rose since the last check"
        )
        if blind and len(blind) < len(seen):
            drops += ", no other drop counter rose since the last check"
        return Decision(
            "not_confirmed",
            f"not confirmed by this host's counters: {drops} and no namespace is at {conf['threshold']}% usage",
            evaluated=True,
        )
    return Decision(None, evidence=found, evaluated=True)


def size(status, conf, recommended):
    """``new max = min(ceiling, max(2 x current, recommendation))``, buckets
    ``new max / hash_ratio``, neither lowered; ``recommended`` is the RAM formula's
    (``conntrack.recommend``)."""
    cap = conf["cap"]
    ceiling = recommended["max"] if cap is None else min(recommended["max"], cap)
    recommendation = recommended["max"] if conf["target"] is None else conf["target"]
    current = status["max"]
    buckets = status["buckets"] or 0
    new_max = min(ceiling, max(2 * current, recommendation))
    plan = Plan(
        current_max=current,
        current_buckets=buckets,
        new_max=new_max,
        new_buckets=max(buckets, -(-new_max // conf["hash_ratio"])),
        ceiling=ceiling,
        recommendation=recommendation,
    )
    if new_max > current:
        return plan
    bound = "cap" if cap is not None and cap < recommended["max"] else "RAM formula"
    return dataclasses.replace(
        plan,
        refused="at_ceiling",
        reason=f"max {current} is already at or above the ceiling {ceiling} ({bound}): "
        "not raised; find what fills the table (conntrack.summary)",
    )


def reapply(differences, last, now, interval):
    """Re-apply the formula, or refuse (``not_confirmed``, ``rate_limited``)."""
    last = min(last or 0, now)
    if not differences:
        return Decision("not_confirmed", "conntrack.drift lists no difference on this host")
    if now - last < interval:
        return Decision("rate_limited", f"re-applied {now - last:.0f} s ago (interval {interval} s)")
    return Decision(None)
