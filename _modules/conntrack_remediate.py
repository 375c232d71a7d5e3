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

import contextlib
import errno
import fcntl
import json
import logging
import os
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

try:
    from saltext_conntrack import common, persistence, runtime
except ImportError as err:  # Salt prints this as the module's reason; docs/design.md
    raise ImportError(
        f"{err}: salt-ssh carries saltext.conntrack only where it is pip-installed on the master; "
        "minions get it from pip or saltutil.sync_all"
    ) from err

log = logging.getLogger(__name__)

__virtualname__ = "conntrack_remediate"

TAG_REMEDIATED = "conntrack/remediated"
TAG_REFUSED = "conntrack/remediation_refused"
TAG_REAPPLIED = "conntrack/reapplied"
TAG_REAPPLY_REFUSED = "conntrack/reapply_refused"
DEFAULTS = {
    "threshold": 90,
    "interval": 600,
    "hash_ratio": 8,
    "cap": None,
    "target": None,
    "persist": True,
    "sysctl_file": "/etc/sysctl.d/90-conntrack.conf",
    "modprobe_file": "/etc/modprobe.d/conntrack.conf",
}


def __virtual__():
    return runtime.kernel.virtual(__grains__, __virtualname__)


# ---------------------------------------------------------------------------
# Paths, options, state file


def _root():
    return common.paths.root_of(__opts__)


def _option(name, value):
    if value is not None:
        return value
    found = __salt__["config.get"](f"conntrack:remediate:{name}", None)
    return DEFAULTS[name] if found is None else found


def _state_dir():
    path = os.path.join(__opts__["cachedir"], "conntrack")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked():
    """One decision at a time on this host, across job processes."""
    fd = os.open(os.path.join(_state_dir(), "remediate.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    raise CommandExecutionError(f"cannot lock the remediation state: {err}") from err
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _load_state():
    try:
        with open(os.path.join(_state_dir(), "remediate.json"), encoding="utf-8") as fh:
            data = json.load(fh)
        if isinstance(data, dict):
            return data
    except (OSError, ValueError):
        pass
    return {}


def _save_state(data):
    directory = _state_dir()
    common.files.atomic_write(
        directory, os.path.join(directory, "remediate.json"), json.dumps(data, sort_keys=True), 0o600
    )


# ---------------------------------------------------------------------------
# Observing every namespace


def _observe():
    """The host's status and every namespace's count and drops (core ``netns.survey``):
    named ones, container runtimes' bind mounts and those only a process holds."""
    status = __salt__["conntrack.status"]()
    maximum = status["max"]
    host_key = "initial"
    with contextlib.suppress(OSError):
        host_key = f"netns:{os.stat(common.paths.join(_root(), 'proc/self/ns/net')).st_ino}"
    seen = [{"key": host_key, "name": "(host)", "count": status["count"], "drop": status["stats"].get("drop")}]
    for row in runtime.namespaces.survey(_root(), status["flavour"], maximum):
        key = f"netns:{row['inode']}"
        if key == host_key:
            continue
        if row["error"] is not None:
            log.debug("conntrack_remediate: cannot read netns %s: %s", runtime.namespaces.label(row), row["error"])
            continue
        seen.append({"key": key, "name": runtime.namespaces.label(row), "count": row["count"], "drop": row["drop"]})
    for item in seen:
        item["usage"] = round(100.0 * item["count"] / maximum, 2) if maximum else 0.0
    return status, seen


def _evidence(seen, baselines, threshold):
    found = []
    for item in seen:
        previous = baselines.get(item["key"])
        if item["drop"] is not None and previous is not None and item["drop"] > previous:
            found.append(f"netns {item['name']}: drop counter rose from {previous} to {item['drop']}")
        if item["usage"] >= threshold:
            found.append(f"netns {item['name']}: usage {item['usage']}% >= {threshold}%")
    return found


# ---------------------------------------------------------------------------
# Persisting


def _persist(conf, flavour, new_max, new_buckets, test):
    """Write (or with ``test`` plan) the new values where ``conntrack.tuned`` keeps
    them, through the same editor, never lowering what the files already hold."""
    key = __salt__["conntrack.sysctl_names"]()["max"]
    done = {
        "sysctl": __salt__["conntrack_files.persist_sysctl"](
            {key: new_max}, path=conf["sysctl_file"], lower=False, test=test
        )
    }
    builtin, _ = runtime.module_chain.builtin(_root(), __grains__.get("kernelrelease") or os.uname().release)
    if new_buckets and builtin:
        # As conntrack.tuned does: options for a module that never loads would
        # never apply, so none are written.
        done["modprobe"] = {"skipped": f"{builtin} is built into this kernel: no modprobe options written"}
    elif new_buckets:
        done["modprobe"] = __salt__["conntrack_files.module_options"](
            flavour, {"hashsize": new_buckets}, path=conf["modprobe_file"], lower=False, test=test
        )
    return done


def _arguments(**given):
    """Every argument (or its configured value) checked, paths resolved, before anything is read."""
    conf = {name: _option(name, value) for name, value in given.items()}
    conf["threshold"] = float(common.numbers.number(conf["threshold"], "threshold", 1, 100))
    conf["interval"] = common.numbers.integer(conf["interval"], "interval", 0, 10**9)
    conf["hash_ratio"] = common.numbers.integer(conf["hash_ratio"], "hash_ratio", 1, 64)
    for name in ("cap", "target"):
        value = conf[name]
        conf[name] = (
            None if value in (None, "", "auto") else common.numbers.integer(value, name, 1, runtime.kernel.INT_MAX)
        )
    conf["persist"] = common.numbers.boolean(conf["persist"], "persist")
    if conf["sysctl_file"] in (None, "default", DEFAULTS["sysctl_file"]):
        # Where conntrack.tuned persists: one file, one truth.
        conf["sysctl_file"] = __salt__["conntrack_files.default_sysctl_file"]()
    # A path that is not one the editor may write, or that leads out of
    # conntrack.root, refuses the call before the kernel is touched, whether
    # or not this call persists: a bad argument is an error, not ignored.
    persistence.plans.target(_root(), conf["sysctl_file"], "sysctl")
    persistence.plans.target(_root(), conf["modprobe_file"], "modprobe")
    return conf


# ---------------------------------------------------------------------------
# The decision


def _fire(tag, data):
    try:
        __salt__["event.send"](tag, data)
    except Exception as err:
        log.warning("conntrack_remediate: could not send %s: %s", tag, err)


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
    conf = _arguments(
        threshold=threshold, interval=interval, hash_ratio=hash_ratio, cap=cap, target=target,
        persist=persist, sysctl_file=sysctl_file, modprobe_file=modprobe_file,
    )  # fmt: skip
    fire_event = common.numbers.boolean(fire_event, "fire_event")
    with _locked():
        state = _load_state()
        baselines = state.get("drops", {})
        status, seen = _observe()
        now = time.time()
        ret = _report(status, seen, now)
        drops = {item["key"]: item["drop"] for item in seen if item["drop"] is not None}
        evaluated = False
        last = _last_remediation(state, now)
        try:
            if not status.get("initial_netns"):
                ret["refused"] = "not_initial_netns"
                ret["reason"] = (
                    "this minion runs outside the initial network namespace, where the "
                    "global limit is read-only: remediate from the host"
                )
            elif last is not None and now - last < conf["interval"]:
                ret["refused"] = "rate_limited"
                ret["reason"] = (
                    f"rate limited: last remediation {int(now - last)} s ago, at most one per "
                    f"{conf['interval']} s (next allowed in {int(conf['interval'] - (now - last)) + 1} s)"
                )
            else:
                evaluated = True
                ret["evidence"] = _evidence(seen, baselines, conf["threshold"])
                if not ret["evidence"]:
                    ret["refused"] = "not_confirmed"
                    ret["reason"] = (
                        "not confirmed by this host's counters: no drop counter rose since the "
                        f"last check and no namespace is at {conf['threshold']}% usage"
                    )
                else:
                    _act(ret, status, conf)
                    if ret["remediated"]:
                        state["last_remediation"] = now
        finally:
            if evaluated:
                state["drops"] = drops
            else:
                # Not looked at: keep every baseline, so the drops of this
                # window still count; only learn namespaces never seen.
                state["drops"] = {**drops, **baselines}
            _save_state(state)

    ret["result"] = not ret.get("errors") and ret["refused"] not in ("at_ceiling", "apply_failed")
    if fire_event:
        event = {k: v for k, v in ret.items() if k != "namespaces"}
        _fire(TAG_REMEDIATED if ret["remediated"] else TAG_REFUSED, event)
    return ret


def _report(status, seen, now):
    return {
        "remediated": False,
        "refused": None,
        "reason": "",
        "evidence": [],
        "old": {"max": status["max"], "buckets": status["buckets"]},
        "new": {"max": status["max"], "buckets": status["buckets"]},
        "persisted": {},
        "namespaces": [{k: item[k] for k in ("name", "count", "usage", "drop")} for item in seen],
        "time": now,
    }


def _last_remediation(state, now):
    """The recorded time of the last remediation, or None; one in the future is clamped to now."""
    last = state.get("last_remediation")
    if isinstance(last, bool) or not isinstance(last, (int, float)):
        return None
    if last > now:
        # The wall clock went back: count the interval from now, once.
        log.warning("conntrack_remediate: last remediation is %.0f s in the future; clamped", last - now)
        last = state["last_remediation"] = now
    return last


def _sizes(ret, status, conf):
    """``(new max, new buckets, recommendation)``, or None (refused at the ceiling)."""
    rec = __salt__["conntrack.recommend"](hash_ratio=conf["hash_ratio"])
    cap = conf["cap"]
    ceiling = rec["max"] if cap is None else min(rec["max"], cap)
    recommendation = rec["max"] if conf["target"] is None else conf["target"]
    current = status["max"]
    new_max = min(ceiling, max(2 * current, recommendation))
    ret["ceiling"] = ceiling
    if new_max <= current:
        ret["refused"] = "at_ceiling"
        ret["reason"] = (
            f"max {current} is already at or above the ceiling {ceiling} "
            f"({'cap' if cap is not None and cap < rec['max'] else 'RAM formula'}): "
            "not raised; find what fills the table (conntrack.summary)"
        )
        return None
    buckets = status["buckets"] or 0
    return new_max, max(buckets, -(-new_max // conf["hash_ratio"])), recommendation


def _act(ret, status, conf):
    sizes = _sizes(ret, status, conf)
    if sizes is None:
        return
    new_max, new_buckets, recommendation = sizes
    current, buckets = status["max"], status["buckets"] or 0
    if conf["persist"]:
        try:
            # Plan the files before the kernel changes: a file that cannot be
            # written refuses the whole remediation, not its last step.
            _persist(conf, status["flavour"], new_max, new_buckets, test=True)
        except Exception as err:
            ret.update(errors=[f"not persisted: {_describe(err)}"], refused="apply_failed")
            ret["reason"] = f"nothing changed: the new values could not be persisted: {_describe(err)}"
            return
    errors = []
    if new_buckets > buckets:
        # Resize first: the bigger table should not land in the old, smaller hash.
        try:
            ret["new"]["buckets"] = __salt__["conntrack.set_buckets"](new_buckets)["new"]
        except Exception as err:
            errors.append(f"buckets not resized: {_describe(err)}")
    try:
        ret["new"]["max"] = __salt__["conntrack.set_max"](new_max)["new"]
    except Exception as err:
        # Whatever it was, the event must say what did change (the buckets).
        errors.append(f"max not raised: {_describe(err)}")
        ret["errors"] = errors
        ret["refused"] = "apply_failed"
        ret["reason"] = f"could not raise max from {current} to {new_max}: {_describe(err)}" + (
            f"; buckets already resized to {ret['new']['buckets']}" if ret["new"]["buckets"] != buckets else ""
        )
        return
    ret["remediated"] = True
    ret["reason"] = (
        f"max raised from {current} to {ret['new']['max']} "
        f"(min(ceiling {ret['ceiling']}, max(2 x {current}, {recommendation})))"
    )
    if conf["persist"]:
        try:
            ret["persisted"] = _persist(conf, status["flavour"], ret["new"]["max"], ret["new"]["buckets"], test=False)
        except Exception as err:
            errors.append(f"not persisted: {_describe(err)}")
    if errors:
        ret["errors"] = errors
        ret["reason"] += "; but " + "; ".join(errors)


def _describe(err):
    if isinstance(err, (CommandExecutionError, SaltInvocationError)):
        return str(err)
    return f"{type(err).__name__}: {err}"


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
    interval = common.numbers.integer(_option("interval", interval), "interval", 0, 10**9)
    fire_event = common.numbers.boolean(fire_event, "fire_event")
    with _locked():
        state = _load_state()
        now = time.time()
        differences = __salt__["conntrack.drift"]()["differences"]
        ret = {"reapplied": False, "refused": None, "reason": "", "differences": differences, "result": True}
        last = min(state.get("last_reapply") or 0, now)
        if not differences:
            ret.update(refused="not_confirmed", reason="conntrack.drift lists no difference on this host")
        elif now - last < interval:
            ret.update(refused="rate_limited", reason=f"re-applied {now - last:.0f} s ago (interval {interval} s)")
        else:
            applied = __salt__["state.apply"]("conntrack", queue=False)
            if isinstance(applied, dict):
                failed = [
                    v.get("comment") for v in applied.values() if isinstance(v, dict) and v.get("result") is False
                ]
            else:
                failed = [str(applied)]  # a list of errors: the SLS did not render, or a state run is going on
            if failed:
                ret.update(
                    refused="apply_failed", result=False, reason=f"state.apply conntrack failed: {failed or applied}"
                )
            else:
                state["last_reapply"] = now
                _save_state(state)
                ret.update(reapplied=True, reason=f"{len(differences)} difference(s): conntrack formula re-applied")
    if fire_event:
        _fire(TAG_REAPPLIED if ret["reapplied"] else TAG_REAPPLY_REFUSED, ret)
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
    state = _load_state()
    _, seen = _observe()
    return {
        "namespaces": [{k: item[k] for k in ("name", "count", "usage", "drop")} for item in seen],
        "baselines": state.get("drops", {}),
        "last_remediation": state.get("last_remediation"),
    }
