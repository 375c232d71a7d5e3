"""
Guarded auto-remediation of a full conntrack table, decided on the host itself.

The reactor (``salt/reactor/``) answers a ``table_full`` beacon event by
applying ``conntrack.remediate`` on the minion the event's tag names. Salt
forwards a minion's events without proving which minion they are about, so an
event can be forged to name any minion, with any values in it. Therefore this
function takes nothing from the event: it confirms the incident from this
host's own counters, sizes the table from this host's own RAM, and rate-limits
itself. A forged event can at most make a host look at its own counters.

How it decides, under one lock (``<cachedir>/conntrack/remediate.lock``):

1. **Observe** the initial network namespace (``conntrack.status``) and every
   other namespace the core's ``netns.survey`` finds (as ``conntrack.namespaces``):
   named ones under ``/run/netns`` (``ip netns``), container runtimes' bind
   mounts (``/run/docker/netns``) and those only a process holds
   (``/proc/PID/ns/net``: Docker, Kubernetes, LXC). The limit is global,
   but each namespace counts its own entries and its own drops: a container
   whose table is full shows nothing in the host's stat file, and the kernel's
   log line (``table full in netns N``) is only what the beacon saw. Each
   namespace is keyed by its inode, so a deleted and re-created name never
   inherits a baseline.
2. **Rate limit**: at most one remediation per ``interval`` seconds (default
   600), recorded in ``<cachedir>/conntrack/remediate.json``. Refused with
   ``rate_limited`` otherwise.
3. **Confirm**: some namespace's ``drop`` counter rose since the value recorded
   at the previous call, or some namespace's usage (its count against the
   global max) is at or above ``threshold`` percent (default 90). The first
   call on a host has no baseline, so only usage can confirm it; it records
   the baseline for the next. Refused with ``not_confirmed`` otherwise.
4. **Size**: ``new max = min(ceiling, max(2 x current, recommendation))``,
   where ``ceiling`` is the RAM formula's (``conntrack.recommend``), lowered by
   ``cap`` when given, and ``recommendation`` is ``target`` (the formula's
   pillar ``conntrack:max``) or the RAM formula's value. Buckets become
   ``new max / hash_ratio``. Neither is ever lowered. Refused with
   ``at_ceiling`` when the max cannot grow.
5. **Apply** at runtime (``conntrack.set_buckets``, ``conntrack.set_max``) and
   **persist** (sysctl file and modprobe options, never lowering a value
   already persisted; like ``conntrack.tuned``, no modprobe options where
   conntrack is built into the kernel), then fire ``conntrack/remediated`` with the old and new
   values, or ``conntrack/remediation_refused`` with the reason.

Partial failures are reported, never hidden: ``result`` is False whenever
``errors`` is non-empty (or the max is at its ceiling).

* The max was raised but the bucket resize or the persisting failed: the
  runtime fix holds, so ``remediated`` is True, the rate limit starts, and
  ``conntrack/remediated`` carries ``errors``.
* Raising the max failed (after the buckets may already have grown): nothing
  relieves the table, so ``remediated`` is False, ``refused`` is
  ``apply_failed``, and ``conntrack/remediation_refused`` carries ``errors``
  and the partial ``new`` (the grown buckets, the unchanged max). The rate
  limit does not start, so the next confirmed event tries again.

Baselines (the drop counters of the previous look) move only when the
evidence was evaluated: a call refused as ``rate_limited`` (or outside the
initial netns) records only namespaces it had never seen, so drops during the
rate-limit window still confirm the first call after it. A recorded last
remediation in the future (the clock went back) is clamped to now: it
neither blocks until the clock catches up nor opens the limit.

:configuration: every argument of :py:func:`remediate` can also be set as a
    minion option or pillar key under ``conntrack:remediate`` (``threshold``,
    ``interval``, ``hash_ratio``, ``cap``, ``target``, ``persist``,
    ``sysctl_file``, ``modprobe_file``); arguments win.
"""

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

try:
    from saltext_conntrack import common, persistence, remediation, runtime
except ImportError as err:  # Salt prints this as the module's reason (salt-ssh from file_roots: docs/design.md)
    raise ImportError(
        f"{err}: salt-ssh carries saltext.conntrack only where it is pip-installed on the master"
    ) from err

__virtualname__ = "conntrack_remediate"

# Set by Salt's loader when it loads this file (declared here for readers and type checkers).
__opts__: dict[str, Any]
__salt__: Mapping[str, Callable[..., Any]]
__grains__: Mapping[str, Any]


def __virtual__():
    return runtime.kernel.virtual(__grains__, __virtualname__)


def _default_sysctl_file():
    return persistence.sysctl_plan.default_file(_root())


def _root():
    return common.paths.root_of(__opts__)


def _configured(name):
    return __salt__["config.get"](f"conntrack:remediate:{name}", None)


def _actions():
    functions = {field: __salt__[name] for field, name in remediation.apply.FUNCTIONS.items()}
    release = __grains__.get("kernelrelease") or os.uname().release
    return remediation.apply.Actions(**functions, root=_root(), release=release)


def remediate(
    threshold=None,
    interval=None,
    hash_ratio=None,
    cap=None,
    target=None,
    persist=None,
    sysctl_file=None,
    modprobe_file=None,
    fire_event=True,
):
    """
    Raise the conntrack limit if, and only if, this host's own counters show a
    full table; at most once per ``interval`` seconds. Takes no input from any
    event: every value is this host's own or its configuration's.

    Returns ``result`` (False when anything failed, see ``errors``, or the
    max is at its ceiling), ``remediated`` (bool: the max was raised),
    ``refused`` (``None``, ``not_initial_netns``, ``rate_limited``,
    ``not_confirmed``, ``at_ceiling`` or ``apply_failed``), ``reason``,
    ``evidence``, ``old`` and ``new`` (``max``, ``buckets``: what the kernel
    has now, partial changes included), ``errors`` (only when something
    failed), ``persisted`` and ``namespaces`` (what was read). Fires
    ``conntrack/remediated`` or ``conntrack/remediation_refused`` with the
    same data.

    threshold
        Usage percent of any namespace that confirms the incident. Default 90.

    interval
        Minimum seconds between two remediations on this host. Default 600.

    hash_ratio
        Entries per hash bucket for the new hashsize. Default 8.

    cap
        A ceiling below the RAM formula's, for hosts where conntrack must not
        take that much memory. Default none.

    target
        The size this host is meant to have (the formula's ``conntrack:max``);
        default the RAM formula's recommendation.

    persist
        Also write the new values to ``sysctl_file`` and ``modprobe_file``
        (under ``conntrack.root``). Default True.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_remediate.remediate
        salt 'web*' conntrack_remediate.remediate threshold=95 interval=1800
    """
    given = {
        "threshold": threshold, "interval": interval, "hash_ratio": hash_ratio, "cap": cap, "target": target,
        "persist": persist, "sysctl_file": sysctl_file, "modprobe_file": modprobe_file,
    }  # fmt: skip
    conf = remediation.options.check(given, _configured, _root(), _default_sysctl_file)
    fire_event = common.numbers.boolean(fire_event, "fire_event")
    cachedir = __opts__["cachedir"]
    with remediation.guard.locked(cachedir):
        state = remediation.guard.load(cachedir)
        baselines = state.get("drops", {})
        status = __salt__["conntrack.status"]()
        seen = remediation.observe.namespaces(_root(), status)
        now = time.time()
        last = remediation.guard.last_remediation(state, now)
        decision = remediation.decide.gate(status, seen, baselines, last, now, conf)
        ret = remediation.apply.report(status, remediation.observe.shown(seen), now, decision)
        try:
            if decision.refused is None:
                recommended = __salt__["conntrack.recommend"](hash_ratio=conf["hash_ratio"])
                plan = remediation.decide.size(status, conf, recommended)
                remediation.apply.run(ret, plan, conf, status["flavour"], _actions())
                if ret["remediated"]:
                    state["last_remediation"] = now
        finally:
            state["drops"] = remediation.guard.baselines(baselines, seen, decision.evaluated)
            remediation.guard.save(cachedir, state)
    event = remediation.apply.finish(ret)
    if fire_event:
        remediation.apply.fire(__salt__["event.send"], *event)
    return ret


def reapply(interval=None, fire_event=True):
    """
    Re-apply the ``conntrack`` formula if, and only if, this host's own
    ``conntrack.drift`` lists a difference; at most once per ``interval``
    seconds (default ``conntrack:remediate:interval``, 600).

    The reactor answers a ``drift`` beacon event with this (off by default:
    see ``salt/reactor/conntrack.conf``). Like :py:func:`remediate` it takes
    nothing from the event: the differences are looked up here, and what is
    applied is the ``conntrack`` SLS with this minion's own pillar. Returns
    ``reapplied``, ``refused`` (``None``, ``not_confirmed``, ``rate_limited``
    or ``apply_failed``), ``reason``, ``differences`` and ``result``; fires
    ``conntrack/reapplied`` or ``conntrack/reapply_refused``.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_remediate.reapply
    """
    interval = remediation.options.interval(remediation.options.pick("interval", interval, _configured))
    fire_event = common.numbers.boolean(fire_event, "fire_event")
    cachedir = __opts__["cachedir"]
    with remediation.guard.locked(cachedir):
        state = remediation.guard.load(cachedir)
        now = time.time()
        differences = __salt__["conntrack.drift"]()["differences"]
        decision = remediation.decide.reapply(differences, state.get("last_reapply"), now, interval)
        ret = remediation.apply.reapply_report(decision, differences)
        if decision.refused is None:
            ret.update(remediation.apply.reapplied(__salt__["state.apply"]("conntrack", queue=False), differences))
            if ret["reapplied"]:
                state["last_reapply"] = now
                remediation.guard.save(cachedir, state)
    if fire_event:
        remediation.apply.fire(__salt__["event.send"], *remediation.apply.reapply_event(ret))
    return ret


def status():
    """
    What the remediation would see now, without acting: every namespace's
    count, usage and drop counter, the recorded baselines and the time of the
    last remediation.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_remediate.status
    """
    state = remediation.guard.load(__opts__["cachedir"])
    seen = remediation.observe.namespaces(_root(), __salt__["conntrack.status"]())
    return {
        "namespaces": remediation.observe.shown(seen),
        "baselines": state.get("drops", {}),
        "last_remediation": state.get("last_remediation"),
    }
