"""The beacon file loaded on its own with the dunders the loader would give it, and the
helpers the logwatch unit tests share; ``conntrack.status`` is a stand-in whose numbers the test sets.
"""

import json

from saltext_conntrack.common import files
from tests.support.beacons import Clock
from tests.support.loaderfile import load


def full(ns, stamp="2026-11-25T11:00:00.000001+00:00"):
    """A table-full line naming netns ``ns``: tests give each line its own, to see repeats and losses."""
    return f"{stamp} vm kernel: nf_conntrack: nf_conntrack: table full in netns {ns}, dropping packet\n"


def saved(path):
    """What the beacon's state file holds now (its newest slot), as the beacon would load it."""
    return json.loads(files.newest_text(path.read_bytes()))


class Env:
    def __init__(self, tmp_path):
        self.mod = load("_beacons/conntrack.py", name=f"unit_beacon_{id(self)}")
        self.clock = Clock()
        self.mod._now = self.clock
        self.cachedir = tmp_path / "cache"
        self.mod.__opts__ = {"cachedir": str(self.cachedir), "conntrack.root": str(tmp_path / "root")}
        self.mod.__context__ = {}
        self.status = {"count": 10, "max": 100, "usage": 10.0, "stats": {"drop": 0, "early_drop": 0}}
        self.status_calls = 0
        self.mod.__salt__ = {"conntrack.status": self._status}
        # An explicit source is a host path under conntrack.root, as every path is.
        self.log = tmp_path / "root" / "var" / "log" / "kern.log"
        self.log.parent.mkdir(parents=True)

    def _status(self):
        self.status_calls += 1
        return json.loads(json.dumps(self.status))

    def set_usage(self, count, maximum=100, drop=None, early_drop=None):
        self.status.update(count=count, max=maximum, usage=round(100.0 * count / maximum, 2))
        if drop is not None:
            self.status["stats"]["drop"] = drop
        if early_drop is not None:
            self.status["stats"]["early_drop"] = early_drop

    def run(self, *extra, source=None, tick=1):
        self.clock.tick(tick)
        config = [{"source": source or "/var/log/kern.log"}, *extra]
        ok, why = self.mod.validate(config)
        assert ok, why
        return self.mod.beacon(config)

    def restart(self):
        for state in self.mod.__context__.values():
            if hasattr(state, "source"):
                state.source.close()
        self.mod.__context__.clear()

    def append(self, text, path=None):
        with open(path or self.log, "a", encoding="utf-8") as fh:
            fh.write(text)


def kinds(events):
    return [e["tag"] for e in events]


def only_full(events):
    got = [e for e in events if e["tag"] == "table_full"]
    assert len(got) == 1, events
    return got[0]


def seen(event):
    """netns inode -> lines, as the event reports them."""
    return {n["inode"]: n["matched"] for n in event["netns"]}


def counted(events):
    """netns inode -> lines over several events; a repeat would show as a count above 1."""
    total = {}
    for event in events:
        if event["tag"] == "table_full":
            for ns, n in seen(event).items():
                total[ns] = total.get(ns, 0) + n
    return total
