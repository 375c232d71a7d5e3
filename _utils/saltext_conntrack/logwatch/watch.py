"""One configured conntrack beacon between runs: its reader, its machines, its state file.

``Watch.start`` picks the reader and resumes what the state file kept;
``Watch.run`` is one beacon run: read the log, feed the machines
(``incidents``), read the counters when due, and return the events. The
execution module's functions come in as ``Probes`` (plain callables), so
nothing here reads Salt's dunders.
"""

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping

from saltext_conntrack.common import files
from saltext_conntrack.logwatch import grammar, incidents, logrotate, sources
from saltext_conntrack.report import diagnosis, facts
from saltext_conntrack.runtime import namespaces

log = logging.getLogger(__name__)

# The findings: once per incident, again only when they are this old. The firewall
# rules (nft/iptables-save, the costly part) are read again only when their
# fingerprint changes, and at least this often.
FINDINGS_TTL = 600.0


@dataclasses.dataclass(frozen=True)
class Probes:
    """``conntrack.status``, and ``conntrack.drift``/``conntrack.diagnose`` where those exist (else None).

    ``readers`` (``__salt__``): where ``conntrack.diagnose``'s own readers are, so the
    findings are built from the status the run already read (``report.facts``).
    """

    status: Callable[[], dict]
    drift: Callable[[], dict] | None = None
    diagnose: Callable[..., dict] | None = None
    readers: Mapping | None = None


def state_path(cachedir, name):
    return os.path.join(cachedir, "conntrack", f"beacon-{name}.json")


def snapshot(probes):
    """``{count, max, usage, drop}``, the early_drop counter and the trend, or (None, None, None).

    ``drop`` is None where no source could read the counters: then
    ``drop_unknown`` says why (no ``drops`` event can fire), and ``source``
    names where each number came from (``conntrack.status``'s).
    """
    return shape(read_status(probes))


def read_status(probes):
    """``conntrack.status``'s answer, or None (logged)."""
    try:
        return probes.status()
    except Exception as err:
        log.debug("conntrack beacon: conntrack.status failed: %s", err)
        return None


def shape(st):
    """``snapshot``'s triple from one status (None: three Nones)."""
    if st is None:
        return None, None, None
    stats = st.get("stats") or {}
    snap = {"count": st["count"], "max": st["max"], "usage": st["usage"], "drop": stats.get("drop")}
    if st.get("source"):
        snap["source"] = st["source"]
    if st.get("stats") is None and "stats" in st:
        snap["drop_unknown"] = (st.get("unknown") or {}).get("stats") or "no source could read the drop counters"
    return snap, stats.get("early_drop"), st.get("trend")


def findings(probes, status=None, root=None, kept=None, now=0.0, wanted=()):
    """The cheap findings of ``conntrack.diagnose`` (no walk of the table), or None.

    With ``status`` (this run's), ``probes.readers`` and ``kept``
    (``facts.Facts``): the same findings without reading the status twice,
    nor what has not changed (see ``report.facts``).
    An event must go out whatever diagnose does: any failure is logged, never raised.
    """
    if probes.diagnose is None:
        return None
    try:
        readers = probes.readers
        if (
            status is not None
            and kept is not None
            and readers is not None
            and all(f in readers for f in diagnosis.READERS)
        ):
            return list(kept.findings(root, status, readers, now, wanted))
        found = probes.diagnose(walk=False)
        return list(found.get("findings") or [])
    except Exception as err:
        log.warning("conntrack beacon: conntrack.diagnose failed, table_full sent without findings: %s", err)
        return None


def found_olddir(source, root):
    """For a log file source without the ``olddir`` option: the one logrotate's config names, or None."""
    if not source.startswith("/"):
        return None
    rel = os.path.relpath(source, os.path.realpath(root))
    if rel.startswith(".."):
        return None
    try:
        return logrotate.olddir_for(root, "/" + rel if rel != "." else "/")
    except Exception as err:  # a config nobody expected must not stop the beacon
        log.warning("conntrack beacon: cannot read logrotate's config for %s: %s", source, err)
        return None


class Watch:
    """One configured beacon between runs (kept in ``__context__``): its reader and tracker."""

    def __init__(self, source, tracker, path, root):
        self.source = source
        self.tracker = tracker
        self.path = path  # the state file, None when persist is off
        self.state = files.SlotFile(os.path.dirname(path), path) if path else None
        self.root = root
        self.saved = (source.cursor_key(), tracker.version)  # last written
        self.status_at = 0.0
        self.read_error = None  # text of the last failed read while the source keeps failing
        self.drift_at = 0.0
        self.drift_seen = ()  # the differences last reported: each is reported once
        self.found = None  # (incident, time, findings): the findings of the incident going on
        self.described = None  # (incident, {netns inode: {name, owner}}): its namespaces, once looked up
        self.facts = facts.Facts(FINDINGS_TTL)  # what the findings are judged on, kept while unchanged
        self.status = None  # this run's conntrack.status, for the findings

    @classmethod
    def start(cls, conf, root, cachedir):
        path = state_path(cachedir, conf.name) if conf.persist else None
        saved, tracker = incidents.load(path) if path else (None, incidents.Tracker())
        olddir = conf.olddir or found_olddir(conf.source, root)
        return cls(sources.make_source(conf.source, root, saved, olddir=olddir), tracker, path, root)

    def _read(self, budget, now):
        """The source's new hits and gaps; a failed read is logged and counted, never raised.

        The counters (usage, drops) must keep working when the log does not. A
        failure is logged as a warning when it starts or changes, then at debug
        level while it goes on, and its end is logged too.
        """
        source = self.source
        try:
            hits = source.read(budget, now)
        except Exception as err:
            text = f"{type(err).__name__}: {err}"
            level = logging.DEBUG if text == self.read_error else logging.WARNING
            log.log(level, "conntrack beacon: cannot read %s: %s", source.name, text)
            self.read_error = text
            return [], source.take_gaps(), True
        if self.read_error is not None:
            log.warning("conntrack beacon: reading %s again", source.name)
            self.read_error = None
        return hits, source.take_gaps(), False

    def _drift_events(self, conf, probes, now):
        """A ``drift`` event when ``conntrack.drift`` lists differences not reported yet.

        Checked every ``drift_interval`` seconds (0: never). The same differences are
        reported once; when they clear, a later drift is new again.
        """
        if not conf.drift_interval or now - self.drift_at < conf.drift_interval or probes.drift is None:
            return []
        self.drift_at = now
        try:
            found = probes.drift()
        except Exception as err:
            log.debug("conntrack beacon: conntrack.drift failed: %s", err)
            return []
        differences = found.get("differences") or []
        seen = tuple(sorted((d["key"], d["runtime"]) for d in differences))
        if seen == self.drift_seen:
            return []
        self.drift_seen = seen
        if not differences:
            return []
        return [{"tag": "drift", "differences": differences, "recorded_at": found.get("recorded_at")}]

    def _full_event(self, now, snap, probes):
        burst = self.tracker.burst
        inodes = burst.pending_netns()
        names = self._names(inodes, now)
        event = burst.event(now, snap, names, self.source.name)
        found, at = self._findings(probes, now, inodes)
        if found is not None:
            event["findings"], event["findings_at"] = found, grammar.iso(at)
        return event

    def _names(self, inodes, now):
        """The namespaces' names and owners, looked up once per incident (a look walks /proc)."""
        inc = self.tracker.burst.incident
        if self.described is None or self.described[0] is not inc:
            self.described = (inc, {})
        known = self.described[1]
        missing = [ino for ino in inodes if ino is not None and ino not in known]
        if missing:
            found = namespaces.describe(self.root, missing, self.facts.discovered(self.root, now, missing))
            known.update({ino: found.get(ino, {}) for ino in missing})
        return known

    def _findings(self, probes, now, inodes=()):
        """``(findings, when computed)``: computed on an incident's first event, reused until ``FINDINGS_TTL``."""
        inc = self.tracker.burst.incident  # a new incident is a new dict
        cached = self.found
        if cached and cached[0] is inc and 0 <= now - cached[1] < FINDINGS_TTL:
            return cached[2], cached[1]
        found = findings(probes, self.status, self.root, self.facts, now, inodes)
        self.found = (inc, now, found) if found is not None else None
        return found, now

    def run(self, conf, probes, now):
        """One beacon run: the events due now, the state file written when anything moved."""
        tracker = self.tracker
        hits, gaps, failed = self._read(conf.max_read, now)
        tracker.burst.add(hits, gaps, failed, now, conf.incident_gap)
        full_due = tracker.burst.due(now, conf.min_interval)
        snap = early = trend = self.status = None
        if full_due or now - self.status_at >= conf.status_interval:
            self.status = read_status(probes)
            snap, early, trend = shape(self.status)
            self.status_at = now
        ret = []
        if snap is not None:  # before table_full: a filling event belongs ahead of the burst it foretold
            ret.extend(tracker.filling.events(conf.full_in_warning, conf.full_in_critical, snap, trend, now))
        if full_due:
            ret.append(self._full_event(now, snap, probes))
        tracker.burst.expire(now, conf.incident_gap)
        if snap is not None:
            ret.extend(tracker.usage.events(conf.usage_warning, conf.usage_critical, conf.hysteresis, snap))
            if conf.drops:
                ret.extend(tracker.drops.events(conf.min_interval, snap, early, now))
        ret.extend(self._drift_events(conf, probes, now))
        self.status = None
        self.save()
        return ret

    def save(self):
        """Cursor and held-back counts together, only when either moved (idle runs write nothing)."""
        key = (self.source.cursor_key(), self.tracker.version)
        if self.path is None or key == self.saved:
            return
        if incidents.save(self.state, self.source.state(), self.tracker):
            self.saved = key

    def close(self):
        """Save, and release the reader's and the state file's descriptors."""
        self.save()
        self.source.close()
        if self.state is not None:
            self.state.close()
