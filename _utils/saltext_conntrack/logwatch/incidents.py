"""Incidents and events of the conntrack beacon, and the one file that keeps them.

Four independent machines decide when an event is due and build it:
``Burst`` coalesces the hits a reader returns (``kernlog``) into one pending
``table_full`` and its incident, ``UsageLevel`` sends ``usage_high``/``usage_ok``
with hysteresis, ``DropRise`` sends the drop counter's rise as ``drops``,
``filling.Filling`` sends ``filling`` once per incident of a rising table. A
``Tracker`` composes them; all they hold between runs (the counts held back by
``min_interval``, the incident, the usage level, the drop counter's pending
rise) round-trips through ``to_dict``/``from_dict``, and
``save`` writes it together with the reader's cursor in one write (one slot of a
``files.SlotFile``, whole or not at all): a
restart, clean or killed, resumes from a cursor and counts that belong
together, so it neither loses, repeats nor splits an incident.
"""

import json
import logging

from saltext_conntrack.common import files
from saltext_conntrack.logwatch import filling, grammar
from saltext_conntrack.report import verdict

log = logging.getLogger(__name__)

STATE_VERSION = 2
GAP_KEYS = ("lost", "lost_bytes", "unverified", "unverified_bytes")


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
        "unverified_bytes": 0,
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
    for hit in hits:
        ns, count, ts = hit[:3]
        if count is None:
            lines = hit[3] if len(hit) > 3 else 1  # a syslog daemon's repeat line stands for several
            matched += lines
            netns[ns] = netns.get(ns, 0) + lines
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


class Burst:
    """The table-full machine: the pending counts, the incident they belong to, ``min_interval``."""

    FIELDS = ("acc", "incident", "open_until")

    def __init__(self):
        self.acc = None  # table-full counts not sent yet
        self.incident = None  # {"start", "last_seen", "last_event", "events"}
        self.open_until = 0.0
        self.version = 0  # bumped whenever something worth saving changed

    def to_dict(self):
        data = {key: getattr(self, key) for key in self.FIELDS}
        if self.acc is not None:
            data["acc"] = {**self.acc, "netns": [[ns, n] for ns, n in self.acc["netns"].items()]}
        return data

    def load(self, data):
        for key in self.FIELDS:
            if key in data:
                setattr(self, key, data[key])
        if isinstance(self.acc, dict):
            self.acc = {**new_acc(), **self.acc, "netns": {ns: n for ns, n in self.acc.get("netns") or []}}

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

    def pending_netns(self):
        """The namespaces the pending lines named (inodes, None for lines naming none)."""
        return list(self.acc["netns"]) if self.acc else []

    def due(self, now, min_interval):
        acc, inc = self.acc, self.incident
        return bool(
            acc
            and (acc["matched"] or acc["suppressed"])
            and inc is not None
            and (inc["last_event"] is None or now - inc["last_event"] >= min_interval)
        )

    def event(self, now, snap, names, source_name):
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


class UsageLevel:
    """The usage machine: the level last reported, left only past the hysteresis band."""

    FIELDS = ("level",)

    def __init__(self):
        self.level = None  # None (unknown), ok, warning, critical
        self.version = 0

    def to_dict(self):
        return {"level": self.level}

    def load(self, data):
        if "level" in data:
            self.level = data["level"]

    def events(self, warning, critical, hysteresis, snap):
        """``usage_high`` on entry and escalation, ``usage_ok`` below the band; thresholds None are off."""
        if warning is None and critical is None:
            return []
        usage = snap["usage"]
        level = verdict.usage_level(usage, warning, critical)
        previous = self.level
        clear_below = (warning if warning is not None else critical) - hysteresis
        base = {"usage": usage, "count": snap["count"], "max": snap["max"], "status": snap}
        if level == "ok" and previous in ("warning", "critical"):
            if usage >= clear_below:
                return []  # inside the hysteresis band: still high
            self._set("ok")
            return [{"tag": "usage_ok", "previous": previous, "clear_below": clear_below, **base}]
        if level != "ok" and verdict.RANK[level] > verdict.RANK.get(previous or "ok", 0):
            self._set(level)
            threshold = critical if level == "critical" else warning
            return [{"tag": "usage_high", "level": level, "threshold": threshold, **base}]
        if previous is None or (previous == "critical" and level == "warning" and usage < critical - hysteresis):
            self._set(level)  # first reading, or down from critical: no event, only the new level
        return []

    def _set(self, level):
        self.level = level
        self.version += 1


class DropRise:
    """The drop-counter machine: the rise since the last event, held back by ``min_interval``."""

    FIELDS = ("drop", "drop_pending", "drop_last_event")

    def __init__(self):
        self.drop = None  # [drop, early_drop, time] at the last reading
        self.drop_pending = None  # rise not sent yet: [delta, early_delta, since]
        self.drop_last_event = None
        self.version = 0

    def to_dict(self):
        return {key: getattr(self, key) for key in self.FIELDS}

    def load(self, data):
        for key in self.FIELDS:
            if key in data:
                setattr(self, key, data[key])

    def _note(self, drop, early, now):
        """Take a reading; False when it is only a new baseline."""
        last = self.drop
        self.drop = [drop, early, now]
        if last is None or drop < last[0]:
            self.version += 1
            return False  # first reading, or the counters were reset (module reload)
        if drop > last[0]:
            pending = self.drop_pending or [0, 0, last[2]]
            self.drop_pending = [pending[0] + drop - last[0], pending[1] + max(0, early - last[1]), pending[2]]
            self.version += 1
        return True

    def events(self, min_interval, snap, early, now):
        drop = snap["drop"]
        if drop is None or not self._note(drop, early or 0, now):
            return []
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


class Tracker:
    """What one configured beacon keeps between runs, apart from the reader's cursor: four machines.

    They share nothing but the state file, whose ``tracker`` object keeps the
    flat shape of the first format (one key per field) so a restart resumes
    whichever version wrote it.
    """

    def __init__(self):
        self.burst = Burst()
        self.usage = UsageLevel()
        self.drops = DropRise()
        self.filling = filling.Filling()

    @property
    def machines(self):
        return (self.burst, self.usage, self.drops, self.filling)

    @property
    def version(self):
        """Changes whenever any machine changed something worth saving."""
        return tuple(machine.version for machine in self.machines)

    def to_dict(self):
        data = {}
        for machine in self.machines:
            data.update(machine.to_dict())
        return data

    @classmethod
    def from_dict(cls, data):
        tracker = cls()
        if isinstance(data, dict):
            for machine in tracker.machines:
                machine.load(data)
        return tracker


# -- the state file ------------------------------------------------------------------


def load(path):
    """``(source cursor, Tracker)`` from the state file; a missing or garbled file is a fresh start."""
    loaded = files.load_own(path, _checked, "beacon state")
    return loaded if loaded is not None else (None, Tracker())


def _checked(data):
    if not isinstance(data, dict):
        raise ValueError(f"not a mapping but {type(data).__name__}")
    if "kind" in data:  # the first format: the cursor alone
        return data, Tracker()
    source = data.get("source")
    if source is not None and not isinstance(source, dict):
        raise ValueError("source is not a mapping")
    tracker = data.get("tracker")
    if tracker is not None:
        _check_tracker(tracker)
    return source, Tracker.from_dict(tracker)


def _num(value, what, none=True):
    if value is None and none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -(2**63) < value < 2**63:
        raise ValueError(f"{what} is not a number")


def _check_tracker(data):
    """ValueError unless every field a machine loads has the shape the machine writes."""
    if not isinstance(data, dict):
        raise ValueError("tracker is not a mapping")
    _num(data.get("open_until", 0), "open_until", none=False)
    _num(data.get("drop_last_event"), "drop_last_event")
    if data.get("level") not in (None, "ok", "warning", "critical"):
        raise ValueError("level is not ok, warning or critical")
    for key in ("drop", "drop_pending"):
        value = data.get(key)
        if value is not None and (not isinstance(value, list) or len(value) != 3):
            raise ValueError(f"{key} is not a list of three numbers")
        for item in value or []:
            _num(item, key, none=False)
    for key in ("acc", "incident"):
        value = data.get(key)
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{key} is not a mapping")
        for name, item in (value or {}).items():
            if name != "netns":
                _num(item, f"{key} {name}")
    netns = (data.get("acc") or {}).get("netns") or []
    if not isinstance(netns, list) or not all(isinstance(p, list) and len(p) == 2 for p in netns):
        raise ValueError("acc netns is not a list of pairs")
    for _, count in netns:
        _num(count, "acc netns count", none=False)


def save(state, source_state, tracker):
    """Cursor and tracker in one write to ``state`` (a ``files.SlotFile``: one slot rewritten in place)."""
    text = json.dumps({"version": STATE_VERSION, "source": source_state, "tracker": tracker.to_dict()})
    try:
        state.save(text)
    except Exception as err:
        log.warning("conntrack beacon: cannot keep the cursor in %s: %s", state.path, err)
        return False
    return True
