"""
Conntrack settings that must survive: sysctl.d, modprobe.d, udev and
iptables-config files, and the tuning that keeps the runtime values and
those files in step.

The files are edited, not owned: every line this module does not manage stays
byte for byte, writes are atomic (temp file in the same directory, fsync,
rename) and keep the file's mode and owner. Each function plans first: it
checks every input, checks the path is one its kind may write and resolves it
(links included) under the minion option ``conntrack.root`` (default ``/``),
reads the file through that resolved path and computes the new text; only
then does it write. ``test=True`` runs the same plan and writes nothing, so it
refuses exactly what a real run refuses.

Each function writes only its own kind of file (anything else is a
``SaltInvocationError``): sysctl ``/etc/sysctl.d/*.conf`` or
``/etc/sysctl.conf``; modprobe ``/etc/modprobe.d/*.conf`` or
``/etc/modprobe.conf``; udev ``/etc/udev/rules.d/*.rules``; iptables-config
``/etc/sysconfig/ip(6)tables-config``. A symlink is written through to its
target, which must stay under ``conntrack.root``, never replaced by a file.

:depends: Linux
"""

import logging
import os

from salt.exceptions import CommandExecutionError, SaltInvocationError

try:
    from saltext_conntrack import common, persistence, runtime
except ImportError as err:  # Salt prints this as the module's reason; docs/design.md
    raise ImportError(
        f"{err}: salt-ssh carries saltext.conntrack only where it is pip-installed on the master; "
        "minions get it from pip or saltutil.sync_all"
    ) from err

log = logging.getLogger(__name__)

__virtualname__ = "conntrack_files"


def __virtual__():
    return runtime.kernel.virtual(__grains__, __virtualname__)


def _root():
    return common.paths.root_of(__opts__)


def _test(test):
    return common.numbers.boolean(test, "test")


# ---------------------------------------------------------------------------
# sysctl


def default_sysctl_file():
    """
    Where conntrack sysctls are persisted on this host.

    ``/etc/sysctl.d/90-conntrack.conf`` where ``/etc/sysctl.d`` exists,
    ``/etc/sysctl.conf`` otherwise (CentOS 5).

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.default_sysctl_file
    """
    return persistence.sysctl_plan.default_file(_root())


def persist_sysctl(values, path=None, test=False, lower=True):
    """
    Persist conntrack sysctls in a sysctl file, editing only their lines.

    ``values`` maps full keys (only ``net.netfilter.nf_conntrack_*``,
    ``net.ipv4.netfilter.ip_conntrack_*`` and ``net.nf_conntrack_max``) to
    integers within that knob's bounds (``max``/``expect_max`` 1 to
    2147483647, ``buckets`` 1 to 268435455, timeouts 1 to 2147483, the 0/1
    switches 0 or 1); a knob with no known bounds is refused. A key already
    in the file has its line rewritten in place (every line for that key, so
    the last one cannot override; ``-key = value``, systemd's form that
    ignores errors, is the same key and keeps its ``-``); a new key is
    appended. With ``lower=False`` a value already in the file that is larger
    stays (the auto-remediation never undoes a bigger size). Returns
    ``path``, ``changes`` (``{key: {old, new}}``) and ``written``.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.persist_sysctl '{"net.netfilter.nf_conntrack_max": 262144}'
        salt '*' conntrack_files.persist_sysctl '{"net.netfilter.nf_conntrack_max": 262144}' test=True
    """
    test, lower = _test(test), common.numbers.boolean(lower, "lower")
    return persistence.plans.result(_root(), persistence.sysctl_plan.plan(_root(), values, path, lower), test)


def sysctl_overrides(values, path=None):
    """
    The files applied after ``path`` at boot that set one of ``values``'s keys
    to another value, so they win over it.

    ``values`` maps sysctl keys to the values persisted in ``path`` (default
    :py:func:`default_sysctl_file`). Boot (systemd-sysctl) applies the
    ``sysctl.d`` directories' files in name order, a name in ``/etc/sysctl.d``
    masking the same name in ``/run``, ``/usr/local/lib`` and ``/usr/lib``,
    then ``/etc/sysctl.conf`` (which distros also link as
    ``99-sysctl.conf``). A key's alias (``net.nf_conntrack_max`` for
    ``net.netfilter.nf_conntrack_max``) and the ``-key`` form count as the
    key. Returns a list of ``{file, key, value}``, in the order boot applies
    them; reads only.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.sysctl_overrides '{"net.netfilter.nf_conntrack_max": 262144}'
    """
    return persistence.sysctl_plan.overrides(_root(), values, path)


# ---------------------------------------------------------------------------
# modprobe.d and udev


def module_options(module, options, path=persistence.module_files.MODPROBE_FILE, test=False, lower=True):
    """
    Keep ``options MODULE key=value ...`` in a modprobe.d file.

    The options given are set in the module's ``options`` line (so
    ``hashsize`` survives a reload of the module); other options on that line
    stay. Keys are module parameter names, values integers. With
    ``lower=False`` a larger value already there stays.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.module_options nf_conntrack '{"hashsize": 131072}'
    """
    test = _test(test)
    return persistence.plans.result(
        _root(), persistence.module_files.options_plan(_root(), module, options, path, lower), test
    )


def blacklist(names, hard=False, present=True, path=persistence.module_files.BLACKLIST_FILE, test=False):
    """
    Blacklist kernel modules in a modprobe.d file (or lift the blacklist).

    ``blacklist NAME`` only stops loading by alias; ``hard=True`` also writes
    ``install NAME /bin/false`` so an explicit ``modprobe NAME`` fails too.
    ``present=False`` removes both lines for each name, and ``elsewhere``
    lists the other ``/etc/modprobe.d`` files that still blacklist one. With
    ``present=True`` and ``hard=False`` an ``install NAME /bin/false`` line
    written earlier is removed.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.blacklist nf_conntrack hard=True
        salt '*' conntrack_files.blacklist '[xt_state, xt_conntrack]'
        salt '*' conntrack_files.blacklist nf_conntrack present=False
    """
    test = _test(test)
    plan = persistence.module_files.blacklist_plan(_root(), names, hard, present, path)
    ret = persistence.plans.result(_root(), plan, test)
    ret["elsewhere"] = (
        {}
        if present
        else persistence.module_files.blacklisted_elsewhere(_root(), persistence.plans.modules(names), path)
    )
    return ret


def udev_running():
    """
    Whether udev runs on this host (``/run/udev/control`` exists).

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.udev_running
    """
    return persistence.module_files.udev_running(_root())


def udev_rule(module="nf_conntrack", present=True, path=persistence.module_files.UDEV_RULE_FILE, test=False):
    """
    Keep the udev rule that re-applies conntrack sysctls whenever the module loads.

    ``ACTION=="add", SUBSYSTEM=="module", KERNEL=="nf_conntrack",
    RUN+="/usr/lib/systemd/systemd-sysctl --prefix=/net/netfilter"`` (the
    prefix is ``/net/ipv4/netfilter`` for ``ip_conntrack``). The file holds
    only that rule; ``present=False`` removes it.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.udev_rule
        salt '*' conntrack_files.udev_rule present=False
    """
    test = _test(test)
    return persistence.plans.result(_root(), persistence.module_files.udev_plan(_root(), module, present, path), test)


# ---------------------------------------------------------------------------
# iptables-config


def iptables_config(settings, path=persistence.iptables_config.CONFIGS[0], add_tokens=None, test=False):
    """
    Enforce keys of a RHEL ``iptables-config`` (or ``ip6tables-config``) file.

    The file is sourced by root's init script, so values are checked before the
    file is touched: yes/no keys take only ``yes``/``no`` (YAML booleans are
    accepted), ``IPTABLES_MODULES`` only module names, ``IPTABLES_SYSCTL_LOAD_LIST``
    only sysctl name parts (at most 64 items and 1024 characters each),
    ``IPTABLES_RESTORE_WAIT*`` only digits. Lines are written as
    ``KEY="value"``; a commented default line (``#KEY=...``) is replaced in
    place; every other line stays byte for byte.

    ``add_tokens`` maps list keys to tokens that must be in the list, keeping
    the tokens already there (used to add ``.nf_conntrack`` to
    ``IPTABLES_SYSCTL_LOAD_LIST``).

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.iptables_config '{"IPTABLES_MODULES_UNLOAD": "no"}'
        salt '*' conntrack_files.iptables_config '{"IP6TABLES_MODULES_UNLOAD": "no"}' \\
            path=/etc/sysconfig/ip6tables-config
    """
    test = _test(test)
    return persistence.plans.result(
        _root(), persistence.iptables_config.plan(_root(), settings, path, add_tokens), test
    )


# ---------------------------------------------------------------------------
# Tuning: one plan for the runtime values and every file, then one apply


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
    return common.numbers.integer(value, name, 1, high)


def _timeouts(timeouts, names, flavour, loaded):
    timeouts = persistence.plans.mapping({} if timeouts is None else timeouts, "timeouts", "short names to seconds")
    known = {short for short, key in names.items() if "_timeout" in key}
    if not loaded or not known:
        known |= set(persistence.sysctl_plan.known_timeouts(flavour))
    out = {}
    for short, seconds in timeouts.items():
        if short not in known:
            raise SaltInvocationError(f"unknown conntrack timeout {short!r}; known: {', '.join(sorted(known))}"[:1000])
        out[short] = common.numbers.integer(seconds, f"timeout {short}", 1, runtime.kernel.TIMEOUT_MAX)
    return out


def _buckets_writable(key):
    """nf_conntrack_buckets takes writes on 5.x+ (initial netns); older kernels make it 0444,
    and ``sysctl -p`` would then fail on a persisted line."""
    try:
        return bool(os.stat(common.paths.join(_root(), "/proc/sys/" + key.replace(".", "/"))).st_mode & 0o200)
    except OSError:
        return False


def _values(max, buckets, timeouts, persist_to):
    """The checked values of a tuning request and the sysctl keys to persist them under."""
    names = __salt__["conntrack.sysctl_names"]()
    flavour = "ip_conntrack" if names["max"].startswith("net.ipv4.") else "nf_conntrack"
    loaded = runtime.kernel.active_flavour(_root()) is not None
    cache = {}

    def recommend():
        if "rec" not in cache:
            cache["rec"] = __salt__["conntrack.recommend"]()
        return cache["rec"]

    plan = {
        "flavour": flavour,
        "loaded": loaded,
        "max": _size(max, "max", "max", runtime.kernel.INT_MAX, recommend),
        "buckets": _size(buckets, "buckets", "hashsize", runtime.kernel.HASHSIZE_MAX, recommend),
        "timeouts": _timeouts(timeouts, names, flavour, loaded),
        "sysctl": {},
        "persist": persistence.sysctl_plan.default_file(_root()) if persist_to is None else persist_to,
    }
    # Checked even when nothing is persisted this time: a bad path is an error, not a no-op.
    persistence.plans.target(_root(), plan["persist"], "sysctl")
    if plan["max"] is not None:
        plan["sysctl"][names["max"]] = plan["max"]
    if plan["buckets"] is not None and _buckets_writable(names["buckets"]):
        plan["sysctl"][names["buckets"]] = plan["buckets"]
    for short, seconds in sorted(plan["timeouts"].items()):
        plan["sysctl"][names.get(short) or persistence.sysctl_plan.timeout_key(short, flavour)] = seconds
    return plan


def _file_plans(plan, survive_reload):
    """Every file the tuning writes, planned (paths resolved and contained, texts computed)."""
    root, module = _root(), plan["flavour"]
    files = [persistence.sysctl_plan.plan(root, plan["sysctl"], plan["persist"])] if plan["sysctl"] else []
    notes = []
    if not survive_reload:
        return files, notes
    builtin, _ = runtime.module_chain.builtin(root, __grains__.get("kernelrelease") or os.uname().release)
    if builtin:
        # A built-in module never loads: modprobe options and a udev rule on
        # module load would never apply, so none are written.
        notes.append(
            f"{builtin} is built into this kernel, so no modprobe.d options or udev rule were "
            "written (they apply only when a module loads); the sysctl file applies at boot"
        )
    else:
        if plan["buckets"] is not None:
            files.append(persistence.module_files.options_plan(root, module, {"hashsize": plan["buckets"]}))
        if plan["sysctl"] and persistence.module_files.udev_running(root):
            files.append(persistence.module_files.udev_plan(root, module))
    for path in persistence.iptables_config.CONFIGS if plan["sysctl"] else ():
        if os.path.isfile(common.paths.join(root, path)):
            key = "IP6TABLES_SYSCTL_LOAD_LIST" if "ip6" in path else "IPTABLES_SYSCTL_LOAD_LIST"
            files.append(persistence.iptables_config.plan(root, {}, path, {key: f".{module}"}))
    return files, notes


def _runtime_plan(plan, force):
    """``[(change key, setter, args, change)]``: the runtime writes, each checked by its
    setter in test mode (ceiling, read-only in a netns, below the count)."""
    out = []
    status = __salt__["conntrack.status"]()
    current = {"max": status["max"], "buckets": status["hashsize"]}
    for key, setter in (("max", "conntrack.set_max"), ("buckets", "conntrack.set_buckets")):
        if plan[key] is not None and current[key] != plan[key]:
            res = __salt__[setter](plan[key], force=force, test=True)
            if res["old"] != res["new"]:
                out.append((key, setter, {"value": plan[key], "force": force}, res))
    now = __salt__["conntrack.timeouts"]() if plan["timeouts"] else {}
    for short, seconds in sorted(plan["timeouts"].items()):
        if short not in now:
            raise CommandExecutionError(f"this kernel has no {short} timeout while conntrack is loaded")
        if now[short] != seconds:
            res = __salt__["conntrack.set_timeout"](short, seconds, test=True)
            if res["old"] != res["new"]:
                out.append((f"timeout {short}", "conntrack.set_timeout", {"name": short, "seconds": seconds}, res))
    return out


def _changes(runtime, files):
    changes = {key: {"old": res["old"], "new": res["new"]} for key, _, _, res in runtime}
    for one in files:
        if one["changes"]:
            changes[one["path"]] = {
                "old": {k: v["old"] for k, v in one["changes"].items()},
                "new": {k: v["new"] for k, v in one["changes"].items()},
            }
    return changes


def tuning_plan(max=None, buckets=None, timeouts=None, persist=None, survive_reload=True, force=False):
    """
    Plan a ``conntrack.tuned`` request: every check, nothing changed.

    ``max`` and ``buckets`` take an integer or ``auto``: the size
    ``conntrack.recommend`` gives, or what the kernel has now where that is
    larger (``auto`` never lowers; an explicit integer may, within
    ``conntrack.set_max``'s checks); ``timeouts`` maps short names
    (``tcp_established``, ``udp``, ...) to seconds; ``persist`` is the sysctl
    file (default :py:func:`default_sysctl_file`). With ``survive_reload``
    the modprobe.d options, the udev rule and ``IPTABLES_SYSCTL_LOAD_LIST``
    are planned too. Each runtime write is checked by its setter in test
    mode, each file is planned (path resolved under ``conntrack.root``, new
    text computed). Returns the resolved values (``max``, ``buckets``,
    ``timeouts``, ``sysctl``, ``persist``, ``flavour``, ``loaded``),
    ``changes`` (what :py:func:`tune` would change), ``pending``, ``overrides``
    (see :py:func:`sysctl_overrides`), ``runtime`` and ``files``.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.tuning_plan max=auto buckets=auto
        salt '*' conntrack_files.tuning_plan timeouts='{"tcp_established": 3600}'
    """
    survive_reload = common.numbers.boolean(survive_reload, "survive_reload")
    force = common.numbers.boolean(force, "force")
    if persist is not None:
        common.numbers.text(persist, "persist", common.paths.PATH_MAX)
    plan = _values(max, buckets, timeouts, persist)
    files, notes = _file_plans(plan, survive_reload)
    runtime = _runtime_plan(plan, force) if plan["loaded"] else []
    wanted = sorted([k for k in ("max", "buckets") if plan[k] is not None] + [f"timeout {k}" for k in plan["timeouts"]])
    if not plan["loaded"] and wanted:
        notes.insert(0, f"conntrack is not loaded, so {', '.join(wanted)} are persisted and pending: "
                        "they apply when the module loads")  # fmt: skip
    plan.update(
        runtime=[{"key": k, "setter": s, "args": a} for k, s, a, _ in runtime],
        files=files,
        changes=_changes(runtime, files),
        pending=". ".join(notes) or None,
        overrides=persistence.sysctl_plan.overrides(_root(), plan["sysctl"], plan["persist"]) if plan["sysctl"] else [],
    )
    return plan


def tune(max=None, buckets=None, timeouts=None, persist=None, survive_reload=True, force=False, test=False):
    """
    Apply :py:func:`tuning_plan`: the runtime values through ``conntrack.set_max``,
    ``set_buckets`` and ``set_timeout``, then every planned file. Nothing is
    changed unless the whole plan passed; ``test=True`` stops after the plan.
    Returns the plan's ``changes``, ``pending``, ``overrides`` and ``persist``.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.tune max=auto buckets=auto
        salt '*' conntrack_files.tune timeouts='{"udp": 30}' test=True
    """
    test = _test(test)
    plan = tuning_plan(max, buckets, timeouts, persist, survive_reload, force)
    done = []
    try:
        for step in [] if test else plan["runtime"]:
            __salt__[step["setter"]](**step["args"])
            done.append(step["key"])
        for one in [] if test else plan["files"]:
            if persistence.plans.apply(_root(), one):
                done.append(one["path"])
    except (CommandExecutionError, SaltInvocationError) as err:
        if not done:
            raise
        raise CommandExecutionError(f"{err} (already changed before the failure: {', '.join(done)})") from err
    if not test and plan["sysctl"]:
        _record_for_drift(plan["sysctl"])
    return {k: plan[k] for k in ("changes", "pending", "overrides", "persist")}


def _record_for_drift(values):
    """What this run set, for ``conntrack.drift`` (a later reload or agent undoing it)."""
    try:
        persistence.drift.record(__opts__["cachedir"], values)
    except (OSError, CommandExecutionError, ValueError) as err:
        log.warning("conntrack_files: cannot record the tuned values for drift: %s", err)
