"""Incidents and events of the conntrack beacon, and the one file that keeps them.

A ``Tracker`` coalesces the hits a reader returns (``kernlog``) into one
pending burst, decides when a ``table_full``, ``usage_high``/``usage_ok`` or
``drops`` event is due, and builds it. All it holds between runs (the counts
held back by ``min_interval``, the incident, the usage level, the drop
counter's pending rise) round-trips through ``to_dict``/``from_dict``, and
``save`` writes it together with the reader's cursor in one atomic write: a
restart, clean or killed, resumes from a cursor and counts that belong
together, so it neither loses, repeats nor splits an incident.
"""

import json
import logging
import os

from saltext_conntrack.common import files
from saltext_conntrack.logwatch import grammar
from saltext_conntrack.report import verdict

log = logging.getLogger(__name__)

STATE_VERSION = 2
GAP_KEYS = ("lost", "lost_bytes", "unverified")


def new_acc():
    return {
        "matched": 0,
        "suppressed": 0,
        "netns": {},
        "first": None,
        "last": None,
        "lost": 0,
        "lost_bytes": 0,
        "unverified": 0,
        "errors": 0,
    }


def coalesce(acc, hits, now, open_now):
    """Add one run's hits to the pending counts; return how many were table-full lines.

    Suppression counts belong to the burst when a table-full line came before
    them (in this run, or within incident_gap), or when the very next hit is
    a table-full line (the kernel prints the count just before the next
    message it lets through).
    """
    waiting = 0
    matched = 0
    netns = acc["netns"]
    for ns, count, ts in hits:
        if count is None:
            matched += 1
            netns[ns] = netns.get(ns, 0) + 1
            if ts is not None:
                if acc["first"] is None or ts < acc["first"]:
                    acc["first"] = ts
                if acc["last"] is None or ts > acc["last"]:
                    acc["last"] = ts
            acc["suppressed"] += waiting
            waiting = 0
            open_now = True
        elif open_now:
            acc["suppressed"] += count
        else:
            waiting = count
    acc["matched"] += matched
    if matched and acc["first"] is None:
        acc["first"] = acc["last"] = now  # lines without a time of their own: when they were read
    return matched


class Tracker:
    """What one configured beacon keeps between runs, apart from the reader's cursor."""

    FIELDS = ("acc", "incident", "open_until", "level", "drop", "drop_pending", "drop_last_event")

    def __init__(self):
        self.acc = None  # table-full counts not sent yet
        self.incident = None  # {"start", "last_seen", "last_event", "events"}
        self.open_until = 0.0
        self.level = None  # usage level last reported: None (unknown), ok, warning, critical
        self.drop = None  # [drop, early_drop, time] at the last reading
        self.drop_pending = None  # rise not sent yet: [delta, early_delta, since]
        self.drop_last_event = None
        self.version = 0  # bumped whenever something worth saving changed

    def to_dict(self):
        data = {key: getattr(self, key) for key in self.FIELDS}
        if self.acc is not None:
            data["acc"] = {**self.acc, "netns": [[ns, n] for ns, n in self.acc["netns"].items()]}
        return data

    @classmethod
    def from_dict(cls, data):
        tracker = cls()
        if not isinstance(data, dict):
            return tracker
        for key in cls.FIELDS:
            if key in data:
                setattr(tracker, key, data[key])
        if isinstance(tracker.acc, dict):
            tracker.acc = {**new_acc(), **tracker.acc, "netns": {ns: n for ns, n in tracker.acc.get("netns") or []}}
        return tracker

    # -- table_full ---------------------------------------------------------------

    def add(self, hits, gaps, failed, now, incident_gap):
        """One run's read: hits, what the reader found destroyed (``gaps``), whether it failed."""
        if not (hits or gaps or failed):
            return
        acc = self.acc or new_acc()
        acc["errors"] += int(failed)
        for key in GAP_KEYS:
            acc[key] += (gaps or {}).get(key, 0)
        if coalesce(acc, hits, now, now < self.open_until):
            self.open_until = now + incident_gap
            inc = self.incident
            if inc is None or now - inc["last_seen"] > incident_gap:
                self.incident = inc = {"start": acc["first"], "last_seen": now, "last_event": None, "events": 0}
            inc["last_seen"] = now
        self.acc = acc
        self.version += 1

    def full_due(self, now, min_interval):
        acc, inc = self.acc, self.incident
        return bool(
            acc
            and (acc["matched"] or acc["suppressed"])
            and inc is not None
            and (inc["last_event"] is None or now - inc["last_event"] >= min_interval)
        )

    def full_event(self, now, snap, names, source_name):
        """The ``table_full`` event for the pending counts (``names``: netns inode -> {name, owner})."""
        acc, inc = self.acc, self.incident
        inc["events"] += 1
        inc["last_event"] = now
        self.acc = None
        self.version += 1
        netns = sorted(acc["netns"].items(), key=lambda kv: (kv[0] is not None, kv[0] or 0))
        return {
            "tag": "table_full",
            "matched": acc["matched"],
            "suppressed": acc["suppressed"],
            "total": acc["matched"] + acc["suppressed"],
            **{key: acc[key] for key in GAP_KEYS},
            "errors": acc["errors"],
            "netns": [
                {
                    "inode": ino,
                    "name": names.get(ino, {}).get("name"),
                    "owner": names.get(ino, {}).get("owner"),
                    "matched": n,
                }
                for ino, n in netns
            ],
            "first": grammar.iso(acc["first"]),
            "last": grammar.iso(acc["last"]),
            "source": source_name,
            "incident": {"start": grammar.iso(inc["start"]), "events": inc["events"]},
            "status": snap,
        }

    def expire(self, now, incident_gap):
        inc = self.incident
        if inc is not None and self.acc is None and now - inc["last_seen"] > incident_gap:
            self.incident = None
            self.version += 1

    # -- usage and drops --------------------------------------------------------------

    def usage_events(self, conf, snap):
        warning, critical, hyst = conf["usage_warning"], conf["usage_critical"], conf["hysteresis"]
        if warning is None and critical is None:
            return []
        usage = snap["usage"]
        level = verdict.usage_level(usage, warning, critical)
        previous = self.level
        clear_below = (warning if warning is not None else critical) - hyst
        base = {"usage": usage, "count": snap["count"], "max": snap["max"], "status": snap}
        if level == "ok" and previous in ("warning", "critical"):
            if usage >= clear_below:
                return []  # inside the hysteresis band: still high
            self._set_level("ok")
            return [{"tag": "usage_ok", "previous": previous, "clear_below": clear_below, **base}]
        if level != "ok" and verdict.RANK[level] > verdict.RANK.get(previous or "ok", 0):
            self._set_level(level)
            threshold = critical if level == "critical" else warning
            return [{"tag": "usage_high", "level": level, "threshold": threshold, **base}]
        if previous is None or (previous == "critical" and level == "warning" and usage < critical - hyst):
            self._set_level(level)  # first reading, or down from critical: no event, only the new level
        return []

    def _set_level(self, level):
        self.level = level
        self.version += 1

    def drop_events(self, min_interval, snap, early, now):
        drop = snap["drop"]
        if drop is None:
            return []
        early = early or 0
        last = self.drop
        self.drop = [drop, early, now]
        if last is None or drop < last[0]:
            self.version += 1
            return []  # first reading, or the counters were reset (module reload): a new baseline
        if drop > last[0]:
            pending = self.drop_pending or [0, 0, last[2]]
            self.drop_pending = [pending[0] + drop - last[0], pending[1] + max(0, early - last[1]), pending[2]]
            self.version += 1
        pending = self.drop_pending
        if not pending or (self.drop_last_event is not None and now - self.drop_last_event < min_interval):
            return []
        self.drop_pending = None
        self.drop_last_event = now
        self.version += 1
        return [
            {
                "tag": "drops",
                "delta": pending[0],
                "drop": drop,
                "early_drop_delta": pending[1],
                "since": grammar.iso(pending[2]),
                "status": snap,
            }
        ]


# -- the state file ------------------------------------------------------------------


def load(path):
    """``(source cursor, Tracker)`` from the state file; a missing or garbled file is a fresh start."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None, Tracker()
    if not isinstance(data, dict):
        return None, Tracker()
    if "kind" in data:  # the first format: the cursor alone
        return data, Tracker()
    return data.get("source"), Tracker.from_dict(data.get("tracker"))


def save(path, source_state, tracker):
    """Cursor and tracker in one atomic write (temp file, fsync, rename, fsync the directory)."""
    text = json.dumps({"version": STATE_VERSION, "source": source_state, "tracker": tracker.to_dict()})
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        files.atomic_write(directory, path, text, mode=0o600)
    except Exception as err:
        log.warning("conntrack beacon: cannot keep the cursor in %s: %s", path, err)
        return False
    return True
