"""The beacon's ``filling`` machine: the table will be full soon at its current rise, once per incident.

``conntrack.status``'s ``trend`` gives ``full_in``; the verdict's
``filling_level`` (the rule ``conntrack.check`` and the fleet use) judges it
against ``full_in_warning``/``full_in_critical``. The first reading that is
not ``ok`` starts an incident and sends one ``filling`` event, normally well
before the first drop. The incident lasts while the table keeps filling (a
full table, ``full_in`` 0, included: drops and ``table_full`` take it from
there) and ends once the count stops rising or ``full_in`` is past twice the
warning threshold, so a trend wavering around a threshold sends no second event.
"""

import datetime

from saltext_conntrack.report import verdict

CLEAR_FACTOR = 2


def _iso(now):
    return datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat(timespec="seconds")


class Filling:
    """The incident a ``filling`` event was sent for, or None."""

    FIELDS = ("filling",)

    def __init__(self):
        self.filling = None  # {"since": iso time, "level": level at the event}
        self.version = 0

    def to_dict(self):
        return {"filling": self.filling}

    def load(self, data):
        if isinstance(data.get("filling"), dict):
            self.filling = data["filling"]

    def _over(self, level, full_in, warning, critical):
        clear_at = CLEAR_FACTOR * (warning if warning is not None else critical)
        return level == "ok" and (full_in is None or full_in >= clear_at)

    def events(self, warning, critical, snap, trend, now):
        """A ``filling`` event when an incident starts; thresholds None are off (both: never)."""
        if warning is None and critical is None:
            return []
        trend = trend or {}
        full_in = trend.get("full_in")
        level = verdict.filling_level(trend, warning, critical)
        if self.filling is not None:
            if self._over(level, full_in, warning, critical):
                self.filling = None
                self.version += 1
            return []
        if level == "ok" or not full_in:  # full already (0): table_full and drops say it
            return []
        self.filling = {"since": _iso(now), "level": level}
        self.version += 1
        return [
            {
                "tag": "filling",
                "level": level,
                "threshold": critical if level == "critical" else warning,
                "full_in": full_in,
                "count_per_s": trend.get("count_per_s"),
                "insert_per_s": trend.get("insert_per_s"),
                "seconds": trend.get("seconds"),
                "count": snap["count"],
                "max": snap["max"],
                "status": snap,
            }
        ]
