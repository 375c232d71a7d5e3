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
``filling``
    At its current rise (``conntrack.status``'s ``trend``, a least-squares
    fit over the status history) the table is full within
    ``full_in_warning`` or ``full_in_critical`` seconds: ``conntrack.check``'s
    rule. Once per incident, normally before the first drop; the incident
    ends when the count stops rising or ``full_in`` is past twice
    ``full_in_warning``. In a run that also sends ``table_full``, it comes first.
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
    unverified: 0          # pieces that may hold unread lines and cannot be read, one
                           # per piece: a truncation with no copy when everything seen
                           # had been read, a generation rotated out of sight while the
                           # minion was down (olddir, deleted), a zstd/lz4 copy, a
                           # journal cursor journalctl refused
    unverified_bytes: 0    # of those, the bytes known unread (0 where unknown)
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
                           # function exists; absent when it does not or fails.
                           # Computed on an incident's first event from this run's
                           # status, reused for 10 minutes; the firewall rules are read
                           # again only when their fingerprint changes (see docs/beacon.md)
    findings_at: '2025-11-25T11:00:00.200000+00:00'   # when they were computed

``usage_high``: ``level`` (``warning``/``critical``), ``threshold``,
``usage``, ``count``, ``max``, ``status``. ``usage_ok``: ``previous`` (the
level left), ``clear_below``, ``usage``, ``count``, ``max``, ``status``.
``drops``: ``delta`` (rise since the last event), ``drop`` (the counter now),
``early_drop_delta``, ``since`` (time of the previous reading), ``status``.
``filling``: ``level``, ``threshold``, ``full_in`` (seconds), ``count_per_s``,
``insert_per_s``, ``seconds`` (the span fitted), ``count``, ``max``, ``status``.
``drift``: ``differences`` (``conntrack.drift``'s list: ``key``, ``runtime``,
``boot``, ``boot_file``, ``tuned``, ``differs_from``, ``cause``) and ``recorded_at``.
``status`` is always ``{count, max, usage, drop}`` (null when conntrack is not
loaded), with ``source`` (where each number came from: ``procfs`` or
``netlink``, as ``conntrack.status`` says); ``drop`` is null where neither
could read the counters, and ``drop_unknown`` says why (no ``drops`` event
can fire then: unknown is never "no drops"). Event data comes from the minion: a reactor must never feed it into
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
    (the rest read from the newest copy, plain or gzip/bzip2/xz, that holds
    what was read: its head and the 1 KiB before the offset), without losing
    or repeating lines. A syslog daemon's repeat lines count as the lines they
    stand for: rsyslog's ``message repeated N times: [...]`` (written only when
    a different message arrives, so those N lines are counted late),
    ``last message repeated N times`` and syslog-ng's ``Last message '...'
    repeated N times`` right after a table-full line.
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
``olddir`` (default none)
    The directory logrotate's ``olddir`` moves a file source's rotated copies
    to (resolved under ``conntrack.root``): they are looked for there too.
    Without it, the beacon reads logrotate's config (``/etc/logrotate.conf``,
    ``/etc/logrotate.d/*`` and their includes, under ``conntrack.root``) for
    the stanza naming the file and takes its ``olddir`` (or the global one).
    With neither, a generation moved there while the minion was down counts
    in ``unverified``, and one created and moved there while down is not seen.
``drift_interval`` (default 300)
    Seconds between two ``conntrack.drift`` checks; 0 turns the ``drift``
    event off. A check reads a few sysctl files and knobs.
``full_in_warning`` / ``full_in_critical`` (default 900 / 120)
    Seconds to full at the current rise that start a ``filling`` incident;
    ``null`` turns that level off (both off: no ``filling`` events). The
    trend needs three status readings over a few seconds: ``status_interval``
    gives them.

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

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

# The shared core. Under pip it is an installed package; under saltutil.sync_all
# it lives in extmods/utils, which the beacons loader does not put on sys.path:
# then __virtual__ gets it from sys.modules once the execution module (whose
# loader does) has imported it.
try:
    from saltext_conntrack import common, logwatch
except ImportError:  # depends on the way in
    common = logwatch = None

__virtualname__ = "conntrack"

# Set by Salt's loader when it loads this file (declared here for readers and type checkers).
__opts__: dict[str, Any]
__salt__: Mapping[str, Callable[..., Any]]
__context__: dict[str, Any]

# Functions whose loading imports the core (their loader puts extmods/utils on sys.path).
CORE_CARRIERS = ("conntrack_log.read_log", "conntrack.status")
CONFIGS = "conntrack.beacon.configs"  # the __context__ key of the parsed configs
# The beacon's clock (tests replace it).
_now = time.time


def _import_core():
    global common, logwatch
    from saltext_conntrack import common, logwatch


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


def _root():
    return common.paths.root_of(__opts__)


def _parsed(config):
    return logwatch.options.parsed(config, _root(), __virtualname__, __context__.setdefault(CONFIGS, {}))


def validate(config):
    """
    Check the beacon configuration; ``(True, message)`` or ``(False, reason)``.

    Every key is checked by the extension's one number rule (no bools, NaN,
    infinities), thresholds in 0-100 and in order, a hysteresis that can
    clear, and ``source``: a path must be absolute, without NUL or ``..``,
    and stay under ``conntrack.root`` with links resolved.
    """
    # Salt validates before every run: a config seen before costs a lookup.
    return logwatch.options.validate(config, _root(), __virtualname__, __context__.setdefault(CONFIGS, {}))


def _probes():
    return logwatch.watch.Probes(
        # Looked up when called: a missing conntrack.status is a failed reading, not a failed run.
        status=lambda: __salt__["conntrack.status"](),
        drift=__salt__.get("conntrack.drift"),
        diagnose=__salt__.get("conntrack.diagnose"),
        readers=__salt__,
    )


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
    key = f"conntrack.beacon.{conf.name}"
    watch = __context__.get(key)
    if watch is None:
        watch = __context__[key] = logwatch.watch.Watch.start(conf, _root(), __opts__["cachedir"])
    return watch.run(conf, _probes(), _now())


def close(config):
    """Save the cursor and release the kernel log descriptors (Salt calls this when beacons are refreshed)."""
    try:
        conf = logwatch.options.parse(config, _root(), __virtualname__)
    except logwatch.options.ERRORS:
        return
    watch = __context__.pop(f"conntrack.beacon.{conf.name}", None)
    if watch is not None:
        watch.close()
