"""The tuning behind ``conntrack.tuned``: one plan for the runtime values and
every file they persist to, then one apply.

The plan checks every input, checks each runtime write through its setter in
test mode and plans every file (path resolved under the root, new text
computed) before anything changes; ``test=True`` is the plan alone. The
runtime calls are the execution module's own (``conntrack.set_max`` and the
rest), passed in as :class:`RuntimeCalls`, so their checks live in one place.
"""

import dataclasses
import logging
import os
from collections.abc import Callable
from typing import TypedDict

from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.common import numbers, paths
from saltext_conntrack.persistence import drift, iptables_config, module_files, plans, sysctl_plan
from saltext_conntrack.runtime import kernel, module_chain

log = logging.getLogger(__name__)

SETTERS = ("conntrack.set_max", "conntrack.set_buckets", "conntrack.set_timeout")


@dataclasses.dataclass(frozen=True)
class RuntimeCalls:
    """The ``conntrack`` execution functions a tuning reads and sets the kernel through."""

    sysctl_names: Callable[[], dict]
    recommend: Callable[[], dict]
    status: Callable[[], dict]
    timeouts: Callable[[], dict]
    set_max: Callable[..., dict]
    set_buckets: Callable[..., dict]
    set_timeout: Callable[..., dict]

    @classmethod
    def of(cls, functions):
        """From a mapping of ``conntrack.NAME`` to function (a loader's functions)."""
        return cls(**{field.name: functions[f"conntrack.{field.name}"] for field in dataclasses.fields(cls)})

    def setter(self, name):
        return getattr(self, name.split(".", 1)[1])


class TuningPlan(TypedDict):
    """A checked tuning request: resolved values, what changes, and the steps to apply."""

    flavour: str
    loaded: bool
    max: int | None
    buckets: int | None
    timeouts: dict
    sysctl: dict
    persist: str
    runtime: list
    files: list
    changes: dict
    pending: str | None
    overrides: list


def _size(value, name, key, high, recommend):
    """An explicit integer, or ``auto``: the recommendation, never below what the kernel has."""
    if value is None:
        return None
    if value == "auto":
        recommended = recommend()
        value = recommended[key]
        held = (recommended.get("current") or {}).get(key)
        if isinstance(held, int) and not isinstance(held, bool) and held > value:
            value = held
        value = min(value, high)
    return numbers.integer(value, name, 1, high)


def _timeouts(timeouts, names, flavour, loaded):
    timeouts = plans.mapping({} if timeouts is None else timeouts, "timeouts", "short names to seconds")
    known = {short for short, key in names.items() if "_timeout" in key}
    if not loaded or not known:
        known |= set(sysctl_plan.known_timeouts(flavour))
    out = {}
    for short, seconds in timeouts.items():
        if short not in known:
            raise SaltInvocationError(
                f"unknown conntrack timeout {numbers.shown(short)}; known: {', '.join(sorted(known))}"
            )
        out[short] = numbers.integer(seconds, f"timeout {short}", 1, kernel.TIMEOUT_MAX)
    return out


def _buckets_writable(root, key):
    """nf_conntrack_buckets takes writes on 5.x+ (initial netns); older kernels make it 0444,
    and ``sysctl -p`` would then fail on a persisted line."""
    try:
        return bool(os.stat(paths.join(root, "/proc/sys/" + key.replace(".", "/"))).st_mode & 0o200)
    except OSError:
        return False


def _values(root, calls, request):
    """The checked values of a tuning request and the sysctl keys to persist them under."""
    names = calls.sysctl_names()
    flavour = "ip_conntrack" if names["max"].startswith("net.ipv4.") else "nf_conntrack"
    loaded = kernel.active_flavour(root) is not None
    cache = {}

    def recommend():
        if "rec" not in cache:
            cache["rec"] = calls.recommend()
        return cache["rec"]

    plan = {
        "flavour": flavour,
        "loaded": loaded,
        "max": _size(request["max"], "max", "max", kernel.INT_MAX, recommend),
        "buckets": _size(request["buckets"], "buckets", "hashsize", kernel.HASHSIZE_MAX, recommend),
        "timeouts": _timeouts(request["timeouts"], names, flavour, loaded),
        "sysctl": {},
        "persist": sysctl_plan.default_file(root) if request["persist"] is None else request["persist"],
    }
    # Checked even when nothing is persisted this time: a bad path is an error, not a no-op.
    plans.target(root, plan["persist"], "sysctl")
    if plan["max"] is not None:
        plan["sysctl"][names["max"]] = plan["max"]
    if plan["buckets"] is not None and _buckets_writable(root, names["buckets"]):
        plan["sysctl"][names["buckets"]] = plan["buckets"]
    for short, seconds in sorted(plan["timeouts"].items()):
        plan["sysctl"][names.get(short) or sysctl_plan.timeout_key(short, flavour)] = seconds
    return plan


def _file_plans(root, release, plan, survive_reload):
    """Every file the tuning writes, planned (paths resolved and contained, texts computed)."""
    module = plan["flavour"]
    files = [sysctl_plan.plan(root, plan["sysctl"], plan["persist"])] if plan["sysctl"] else []
    notes = []
    if not survive_reload:
        return files, notes
    builtin, _ = module_chain.builtin(root, release)
    if builtin:
        # A built-in module never loads: modprobe options and a udev rule on
        # module load would never apply, so none are written.
        notes.append(
            f"{builtin} is built into this kernel, so no modprobe.d options or udev rule were "
            "written (they apply only when a module loads); the sysctl file applies at boot"
        )
    else:
        if plan["buckets"] is not None:
            files.append(module_files.options_plan(root, module, {"hashsize": plan["buckets"]}))
        if plan["sysctl"] and module_files.udev_running(root):
            files.append(module_files.udev_plan(root, module))
    for path in iptables_config.CONFIGS if plan["sysctl"] else ():
        if os.path.isfile(paths.join(root, path)):
            key = "IP6TABLES_SYSCTL_LOAD_LIST" if "ip6" in path else "IPTABLES_SYSCTL_LOAD_LIST"
            files.append(iptables_config.plan(root, {}, path, {key: f".{module}"}))
    return files, notes


def _runtime_plan(calls, plan, force):
    """``[(change key, setter, args, change)]``: the runtime writes, each checked by its
    setter in test mode (ceiling, read-only in a netns, below the count)."""
    out = []
    status = calls.status()
    current = {"max": status["max"], "buckets": status["hashsize"]}
    for key, setter in (("max", "conntrack.set_max"), ("buckets", "conntrack.set_buckets")):
        if plan[key] is not None and current[key] != plan[key]:
            res = calls.setter(setter)(plan[key], force=force, test=True)
            if res["old"] != res["new"]:
                out.append((key, setter, {"value": plan[key], "force": force}, res))
    now = calls.timeouts() if plan["timeouts"] else {}
    for short, seconds in sorted(plan["timeouts"].items()):
        if short not in now:
            raise CommandExecutionError(f"this kernel has no {short} timeout while conntrack is loaded")
        if now[short] != seconds:
            res = calls.set_timeout(short, seconds, test=True)
            if res["old"] != res["new"]:
                out.append((f"timeout {short}", "conntrack.set_timeout", {"name": short, "seconds": seconds}, res))
    return out


def _changes(writes, files):
    changes = {key: {"old": res["old"], "new": res["new"]} for key, _, _, res in writes}
    for one in files:
        if one["changes"]:
            changes[one["path"]] = {
                "old": {k: v["old"] for k, v in one["changes"].items()},
                "new": {k: v["new"] for k, v in one["changes"].items()},
            }
    return changes


def plan(root, release, calls, request) -> TuningPlan:
    """Plan a tuning ``request`` (``max``, ``buckets``, ``timeouts``, ``persist``,
    ``survive_reload``, ``force``): every check, nothing changed."""
    request = dict(request)
    survive_reload = numbers.boolean(request["survive_reload"], "survive_reload")
    force = numbers.boolean(request["force"], "force")
    if request["persist"] is not None:
        numbers.text(request["persist"], "persist", paths.PATH_MAX)
    out = _values(root, calls, request)
    files, notes = _file_plans(root, release, out, survive_reload)
    writes = _runtime_plan(calls, out, force) if out["loaded"] else []
    wanted = sorted([k for k in ("max", "buckets") if out[k] is not None] + [f"timeout {k}" for k in out["timeouts"]])
    if not out["loaded"] and wanted:
        notes.insert(0, f"conntrack is not loaded, so {', '.join(wanted)} are persisted and pending: "
                        "they apply when the module loads")  # fmt: skip
    out.update(
        runtime=[{"key": k, "setter": s, "args": a} for k, s, a, _ in writes],
        files=files,
        changes=_changes(writes, files),
        pending=". ".join(notes) or None,
        overrides=sysctl_plan.overrides(root, out["sysctl"], out["persist"]) if out["sysctl"] else [],
    )
    return out


def apply(root, tuning: TuningPlan, calls, cachedir):
    """The runtime values through their setters, then every planned file, then the
    record for drift. Returns what changed, in order."""
    done = []
    try:
        for step in tuning["runtime"]:
            calls.setter(step["setter"])(**step["args"])
            done.append(step["key"])
        for one in tuning["files"]:
            if plans.apply(root, one):
                done.append(one["path"])
    except (CommandExecutionError, SaltInvocationError) as err:
        if not done:
            raise
        raise CommandExecutionError(f"{err} (already changed before the failure: {', '.join(done)})") from err
    if tuning["sysctl"]:
        _record_for_drift(cachedir, tuning["sysctl"])
    return done


def summary(tuning: TuningPlan):
    """What ``conntrack_files.tune`` reports of a plan."""
    return {k: tuning[k] for k in ("changes", "pending", "overrides", "persist")}


def _record_for_drift(cachedir, values):
    """What this run set, for ``conntrack.drift`` (a later reload or agent undoing it)."""
    try:
        drift.record(cachedir, values)
    except (OSError, CommandExecutionError, ValueError) as err:
        log.warning("conntrack_files: cannot record the tuned values for drift: %s", err)
