"""
Beacon: the conntrack table is full, nearly full, or dropping packets.

Why this beacon rather than Salt's ``log`` beacon: the table-full message is
the one line an operator needs when ping starts losing packets, and the kernel
prints it in bursts of thousands (rate limited, with "suppressed" counts in
between). The ``log`` beacon sends one event per line with no limit, starts at
the end of the file on every restart and loses lines when the file rotates.
This beacon coalesces a burst into one event per run, counts what the kernel
suppressed, follows rotation, truncation and ``/dev/kmsg`` overruns, and adds
what no log line can say: how full the table is and whether the kernel's own
drop counter is rising (which works even when logging is rate limited or off).

Counters come from the execution module (``__salt__["conntrack.status"]()``),
so they are the minion's own network namespace's.

Event tags
----------
``salt/beacon/<minion id>/conntrack/<kind>``, kind one of:

``table_full``
    Table-full lines were logged. At most one per beacon run; while the same
    incident goes on (lines less than ``incident_gap`` seconds apart), at most
    one per ``min_interval`` seconds, the lines seen in between carried into
    the next event so no count is lost.
``usage_high``
    Usage (count / max) reached ``usage_warning`` or ``usage_critical``
    percent. Sent on entry and on escalation to critical, not on every run.
``usage_ok``
    Usage fell back below ``usage_warning - hysteresis`` after a ``usage_high``.
``drops``
    The kernel's ``drop`` counter (packets dropped because no entry could be
    allocated) rose since the last look. Same ``min_interval`` rule, the rise
    carried over.
``drift``
    A runtime value differs from what boot will set or from what
    ``conntrack.tuned`` last set (``conntrack.drift``): a module reload or
    another agent undid it. Each set of differences is sent once.

Event data
----------
``table_full``:

.. code-block:: yaml

    matched: 3             # table-full lines read
    suppressed: 431        # counts of "net_ratelimit: N callbacks suppressed" /
                           # "printk: N messages suppressed." that belong to the burst
    total: 434             # matched + suppressed: the burst's true size
    lost: 0                # log content known destroyed before it was read: kmsg
                           # records overwritten (exact count), plus files rotated or
                           # truncated away with bytes the beacon had seen but not read
    lost_bytes: 0          # those bytes (files)
    unverified: 0          # content gone where nobody can know whether any of it was
                           # unread: a truncation with no copy when everything seen had
                           # been read, a journal cursor journalctl refused
    errors: 0              # runs whose read of the log failed since the last event
                           # (logged; the counters are still read and reported)
    netns:                 # namespaces named in the lines; inode null: the line names
      - inode: 4026532177  # none (the initial netns on 6.17+, any netns before)
        name: blue         # its bind mount's name (/run/netns, /run/docker/netns), else
                           # runtime:container or "pid N (process)"; null when not found
        owner:             # the process holding it (core netns.owner_of); null for
          pid: 4242        # one held only by a bind mount, or not found
          process: sleep
          runtime: null    # docker, kubernetes, podman, containerd, cri-o, lxc
          container: null  # from the process's cgroup, null when none
        matched: 3
    first: '2025-11-25T11:00:00.123456+00:00'   # time of the first and last line
    last: '2025-11-25T11:00:04.001000+00:00'
    source: kmsg           # kmsg, journal or the log file's path
    incident: {start: '2025-11-25T11:00:00.123456+00:00', events: 1}
    status: {count: 262144, max: 262144, usage: 100.0, drop: 5123}
    findings: [...]        # conntrack.diagnose(walk=False)'s findings, where that
                           # function exists; absent when it does not or fails

``usage_high``: ``level`` (``warning``/``critical``), ``threshold``,
``usage``, ``count``, ``max``, ``status``. ``usage_ok``: ``previous`` (the
level left), ``clear_below``, ``usage``, ``count``, ``max``, ``status``.
``drops``: ``delta`` (rise since the last event), ``drop`` (the counter now),
``early_drop_delta``, ``since`` (time of the previous reading), ``status``.
``drift``: ``differences`` (``conntrack.drift``'s list: ``key``, ``runtime``,
``boot``, ``boot_file``, ``tuned``, ``differs_from``, ``cause``) and ``recorded_at``.
``status`` is always ``{count, max, usage, drop}`` (null when conntrack is not
loaded). Event data comes from the minion: a reactor must never feed it into
commands or values.

Options
-------
``source`` (default ``auto``)
    ``kmsg``: ``/dev/kmsg``, non-blocking, starting at its end on first run,
    following sequence numbers; when the kernel overwrites records before
    they were read it resyncs and counts them in ``lost``. Only records of the
    kernel facility count (user space cannot write those). Before Linux 3.5
    (CentOS 5 and 6) /dev/kmsg cannot be read: asking for it there is an error.
    ``journal``: kernel messages (``_TRANSPORT=kernel``) from journald via
    ``journalctl`` (systemd 219 and later), resumed from a cursor; costs a
    process per run. A cursor journalctl refuses is dropped: reading starts
    again at the journal's end, counted in ``unverified``.
    An absolute path (``/var/log/kern.log``, ``/var/log/messages``), resolved
    under ``conntrack.root`` with links resolved (it must stay under it): a
    cursor (inode, offset, the last bytes read) that follows rename rotation
    (the old file is held open and read until it has been quiet for 10 s and
    the new file has content, at most an hour and 4 files; generations rotated
    away between two runs are found by inode and mtime) and ``copytruncate``
    (the rest read from the copy), without losing or repeating lines.
    ``auto``: kmsg where a record can be read, else the journal, else the first of
    ``/var/log/kern.log``, ``/var/log/messages``, ``/var/log/syslog`` that
    exists (kmsg and these files are looked up under ``conntrack.root``).
``min_interval`` (default 60)
    Seconds between two events of one kind while an incident goes on.
``incident_gap`` (default 120)
    Seconds without a table-full line after which an incident is over; the
    next line starts a new incident and fires at once.
``usage_warning`` / ``usage_critical`` (default 75 / 90)
    Percent of ``max``; ``null`` turns that level off (both off: no usage events).
``hysteresis`` (default 5)
    Percentage points usage must fall below ``usage_warning`` (or
    ``usage_critical`` when warning is off) to clear.
``drops`` (default true)
    Watch the kernel's drop counter.
``status_interval`` (default 5)
    Seconds between two reads of the counters on runs that saw no table-full
    line; 0 reads them every run. A read costs about 0.2 ms, a run with no new
    line about a tenth of that.
``persist`` (default true)
    Keep the cursor (file generations held open included, the journal cursor,
    the kmsg sequence number of this boot) and everything held back for the
    next event (counts, the incident, the usage level, the drop counter's
    rise) in ``<cachedir>/conntrack/beacon-<name>.json``, in one atomic write
    per run that changed them: a minion restart, clean or killed, neither
    loses, repeats nor splits an incident.
``max_read`` (default 16777216)
    Bytes read per run at most; the rest is read on the next runs.
``drift_interval`` (default 300)
    Seconds between two ``conntrack.drift`` checks; 0 turns the ``drift``
    event off. A check reads a few sysctl files and knobs.

Plus Salt's own ``interval``, ``enabled``, ``run_once``,
``disable_during_state_run`` and ``beacon_module``.

Example configs
---------------

.. code-block:: yaml

    beacons:
      conntrack:
        - interval: 5

.. code-block:: yaml

    beacons:
      conntrack:
        - source: /var/log/kern.log
        - min_interval: 300
        - usage_warning: 80
        - usage_critical: 95
        - hysteresis: 5
        - interval: 10

.. code-block:: bash

    salt-call beacons.add conntrack "[{'source': 'kmsg'}, {'interval': 5}]"
    salt-run state.event 'salt/beacon/*/conntrack/*' pretty=True
"""

import logging
import os
import re
import sys
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

# The shared core. Under pip it is an installed package; under saltutil.sync_all
# it lives in extmods/utils, which the beacons loader does not put on sys.path:
# then __virtual__ gets it from sys.modules once the execution module (whose
# loader does) has imported it.
try:
    from saltext_conntrack import common, logwatch, runtime
except ImportError:  # depends on the way in
    common = logwatch = runtime = None

log = logging.getLogger(__name__)

__virtualname__ = "conntrack"

DEFAULTS = {
    "source": "auto",
    "min_interval": 60,
    "incident_gap": 120,
    "usage_warning": 75,
    "usage_critical": 90,
    "hysteresis": 5,
    "drops": True,
    "status_interval": 5,
    "persist": True,
    "max_read": 16 * 2**20,
    "drift_interval": 300,
}
# Keys Salt itself reads from every beacon's config.
SALT_KEYS = frozenset(("interval", "enabled", "run_once", "disable_during_state_run", "beacon_module", "_beacon_name"))
# Seconds options (0 to a day) and whether 0 is allowed; thresholds are percent, null turns one off.
SECONDS = {"min_interval": True, "incident_gap": False, "status_interval": True, "drift_interval": True}
PERCENT = ("usage_warning", "usage_critical")
# Functions whose loading imports the core (their loader puts extmods/utils on sys.path).
CORE_CARRIERS = ("conntrack_log.read_log", "conntrack.status")
# The beacon's clock (tests replace it).
_now = time.time


def _import_core():
    global common, logwatch, runtime
    from saltext_conntrack import common, logwatch, runtime


def __virtual__():
    if not sys.platform.startswith("linux"):
        return False, "conntrack beacon: netfilter connection tracking exists only on Linux"
    if logwatch is None:
        for name in CORE_CARRIERS:
            if name in __salt__:
                break
        try:
            _import_core()
        except ImportError as err:
            return False, (
                f"conntrack beacon: the shared core saltext_conntrack cannot be imported ({err}); "
                "ship it with saltutil.sync_all (it is in _utils/) or pip install saltext.conntrack"
            )
    return __virtualname__


# ---------------------------------------------------------------------------
# Configuration


def _above_zero(value, name, high, allow_none=False):
    if value is None and allow_none:
        return None
    value = common.numbers.number(value, name, 0, high)
    if value == 0:
        raise ValueError(f"{name} must be above 0, got 0")
    return value


def _source(value):
    """``auto``/``kmsg``/``journal``, or an operator's path resolved under conntrack.root."""
    common.numbers.text(value, "source", common.paths.PATH_MAX)
    if value in ("auto", "kmsg", "journal"):
        return value
    if not value.startswith("/"):
        raise ValueError(f"source must be auto, kmsg, journal or an absolute log file path, got {value!r}")
    real = common.paths.resolve(common.paths.root_of(__opts__), value, "source")
    if os.path.isdir(real):
        raise ValueError(f"source {value} is a directory: give a log file such as /var/log/kern.log")
    return real


def _options(given):
    conf = {**DEFAULTS, **{k: v for k, v in given.items() if k in DEFAULTS}}
    conf["source"] = _source(conf["source"])
    for key, zero in SECONDS.items():
        conf[key] = common.numbers.number(conf[key], key, 0, 86400) if zero else _above_zero(conf[key], key, 86400)
    for key in PERCENT:
        conf[key] = _above_zero(conf[key], key, 100, allow_none=True)
    conf["hysteresis"] = common.numbers.number(conf["hysteresis"], "hysteresis", 0, 100)
    for key in ("drops", "persist"):
        conf[key] = common.numbers.boolean(conf[key], key)
    conf["max_read"] = common.numbers.integer(conf["max_read"], "max_read (bytes)", 4096, 2**31)
    warning, critical, hysteresis = conf["usage_warning"], conf["usage_critical"], conf["hysteresis"]
    if warning is not None and critical is not None and warning > critical:
        raise ValueError(f"usage_warning ({warning}) must not be above usage_critical ({critical})")
    lowest = warning if warning is not None else critical
    if lowest is not None and hysteresis >= lowest:
        raise ValueError(f"hysteresis ({hysteresis}) must be below the lowest usage threshold ({lowest})")
    conf["name"] = re.sub(r"[^A-Za-z0-9_.-]", "_", str(given.get("_beacon_name") or __virtualname__))[:100]
    return conf


def _parse(config):
    """Config list -> dict with defaults; ValueError (or Salt's argument errors) with an operator's sentence."""
    if not isinstance(config, list):
        raise ValueError(
            "configuration for the conntrack beacon must be a list of one-key dicts, "
            f"e.g. [{{'source': 'kmsg'}}, {{'interval': 5}}], got {type(config).__name__}"
        )
    given = {}
    for item in config:
        if not isinstance(item, dict):
            raise ValueError(f"every item of the conntrack beacon config must be a dict, got {item!r}"[:300])
        given.update(item)
    unknown = sorted(map(str, set(given) - set(DEFAULTS) - SALT_KEYS))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)}"[:300] + f"; known: {', '.join(sorted(DEFAULTS))} "
            f"and Salt's {', '.join(sorted(SALT_KEYS - {'_beacon_name'}))}"
        )
    return _options(given)


def _parsed(config):
    """``_parse`` once per distinct config and root: checking the path on every run would cost most of an idle run."""
    key = (repr(config), common.paths.root_of(__opts__))
    cache = __context__.setdefault("conntrack.beacon.configs", {})
    conf = cache.get(key)
    if conf is None:
        conf = _parse(config)
        if len(cache) >= 16:
            cache.clear()
        cache[key] = conf
    return conf


def validate(config):
    """
    Check the beacon configuration; ``(True, message)`` or ``(False, reason)``.

    Every key is checked by the extension's one number rule (no bools, NaN,
    infinities), thresholds in 0-100 and in order, a hysteresis that can
    clear, and ``source``: a path must be absolute, without NUL or ``..``,
    and stay under ``conntrack.root`` with links resolved.
    """
    try:
        _parsed(config)  # Salt validates before every run: a config seen before costs a lookup
    except (ValueError, SaltInvocationError, CommandExecutionError) as err:
        return False, f"conntrack beacon: {err}"
    return True, "Valid beacon configuration"


# ---------------------------------------------------------------------------
# Glue: the reader, the tracker, the counters, the state file


class _State:
    """One configured beacon between runs (in ``__context__``): its reader and tracker."""

    def __init__(self, source, tracker, path):
        self.source = source
        self.tracker = tracker
        self.path = path  # the state file, None when persist is off
        self.saved = None  # (cursor key, tracker version) last written
        self.status_at = 0.0
        self.read_error = None  # text of the last failed read while the source keeps failing
        self.drift_at = 0.0
        self.drift_seen = ()  # the differences last reported: each is reported once


def _state_path(name):
    return os.path.join(__opts__["cachedir"], "conntrack", f"beacon-{name}.json")


def _start(conf):
    path = _state_path(conf["name"]) if conf["persist"] else None
    saved, tracker = logwatch.incidents.load(path) if path else (None, logwatch.incidents.Tracker())
    root = common.paths.root_of(__opts__)
    source = logwatch.sources.make_source(conf["source"], root, saved)
    state = _State(source, tracker, path)
    state.saved = (source.cursor_key(), tracker.version)
    return state


def _netns_names(inodes):
    """Name and owner of each namespace the lines named: its /run/netns name, or the
    container or process holding it (core ``netns.describe``)."""
    return runtime.namespaces.describe(common.paths.root_of(__opts__), inodes)


def _status():
    """``{count, max, usage, drop}`` and the early_drop counter, or (None, None)."""
    try:
        st = __salt__["conntrack.status"]()
    except Exception as err:
        log.debug("conntrack beacon: conntrack.status failed: %s", err)
        return None, None
    stats = st.get("stats") or {}
    snap = {"count": st["count"], "max": st["max"], "usage": st["usage"], "drop": stats.get("drop")}
    return snap, stats.get("early_drop")


def _drift_events(conf, state, now):
    """A ``drift`` event when ``conntrack.drift`` lists differences not reported yet.

    Checked every ``drift_interval`` seconds (0: never). The same differences are
    reported once; when they clear, a later drift is new again.
    """
    if not conf["drift_interval"] or now - state.drift_at < conf["drift_interval"]:
        return []
    if "conntrack.drift" not in __salt__:
        return []
    state.drift_at = now
    try:
        found = __salt__["conntrack.drift"]()
    except Exception as err:
        log.debug("conntrack beacon: conntrack.drift failed: %s", err)
        return []
    differences = found.get("differences") or []
    seen = tuple(sorted((d["key"], d["runtime"]) for d in differences))
    if seen == state.drift_seen:
        return []
    state.drift_seen = seen
    if not differences:
        return []
    return [{"tag": "drift", "differences": differences, "recorded_at": found.get("recorded_at")}]


def _findings():
    """The cheap findings of ``conntrack.diagnose`` (no walk of the table), or None.

    An event must go out whatever diagnose does: any failure is logged, never raised.
    """
    if "conntrack.diagnose" not in __salt__:
        return None
    try:
        found = __salt__["conntrack.diagnose"](walk=False)
        return list(found.get("findings") or [])
    except Exception as err:
        log.warning("conntrack beacon: conntrack.diagnose failed, table_full sent without findings: %s", err)
        return None


def _read_source(state, budget, now):
    """The source's new hits and gaps; a failed read is logged and counted, never raised.

    The counters (usage, drops) must keep working when the log does not. A
    failure is logged as a warning when it starts or changes, then at debug
    level while it goes on, and its end is logged too.
    """
    source = state.source
    try:
        hits = source.read(budget, now)
    except Exception as err:
        text = f"{type(err).__name__}: {err}"
        level = logging.DEBUG if text == state.read_error else logging.WARNING
        log.log(level, "conntrack beacon: cannot read %s: %s", source.name, text)
        state.read_error = text
        return [], source.take_gaps(), True
    if state.read_error is not None:
        log.warning("conntrack beacon: reading %s again", source.name)
        state.read_error = None
    return hits, source.take_gaps(), False


def _save(state):
    """Cursor and held-back counts together, only when either moved (idle runs write nothing)."""
    key = (state.source.cursor_key(), state.tracker.version)
    if state.path is None or key == state.saved:
        return
    if logwatch.incidents.save(state.path, state.source.state(), state.tracker):
        state.saved = key


def beacon(config):
    """
    Watch the kernel log and the conntrack counters; see the module docstring.

    .. code-block:: yaml

        beacons:
          conntrack:
            - source: auto
            - min_interval: 60
            - usage_warning: 75
            - usage_critical: 90
            - interval: 5
    """
    conf = _parsed(config)
    key = f"conntrack.beacon.{conf['name']}"
    state = __context__.get(key)
    if state is None:
        state = __context__[key] = _start(conf)
    now = _now()
    tracker = state.tracker
    hits, gaps, failed = _read_source(state, conf["max_read"], now)
    tracker.add(hits, gaps, failed, now, conf["incident_gap"])

    full_due = tracker.full_due(now, conf["min_interval"])
    snap = early = None
    if full_due or now - state.status_at >= conf["status_interval"]:
        snap, early = _status()
        state.status_at = now
    ret = []
    if full_due:
        event = tracker.full_event(now, snap, _netns_names(tracker.acc["netns"]), state.source.name)
        findings = _findings()
        if findings is not None:
            event["findings"] = findings
        ret.append(event)
    tracker.expire(now, conf["incident_gap"])
    if snap is not None:
        ret.extend(tracker.usage_events(conf, snap))
        if conf["drops"]:
            ret.extend(tracker.drop_events(conf["min_interval"], snap, early, now))
    ret.extend(_drift_events(conf, state, now))
    _save(state)
    return ret


def close(config):
    """Save the cursor and release the kernel log descriptors (Salt calls this when beacons are refreshed)."""
    try:
        conf = _parse(config)
    except (ValueError, SaltInvocationError, CommandExecutionError):
        return
    state = __context__.pop(f"conntrack.beacon.{conf['name']}", None)
    if state is not None:
        _save(state)
        state.source.close()
