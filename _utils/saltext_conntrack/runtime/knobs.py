"""The conntrack knobs one can set at runtime: their names, a checked plan per change, the write."""

import os

from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.common import numbers, paths
from saltext_conntrack.runtime import kernel, sizing, snapshot


def timeouts(host):
    """Every timeout of this network namespace, in seconds, by short name."""
    flavour, _ = snapshot.loaded(host)
    files = kernel.timeout_files(host.root, flavour)
    return {short: snapshot.read_int(host.root, rel) for short, rel in sorted(files.items())}


def sysctl_names(host):
    """``{short name: full sysctl key}`` under the names the running kernel understands."""
    name = snapshot.known_flavour(host)
    spec = kernel.FLAVOURS[name]
    ret = {short: spec["sysctl_prefix"] + spec["prefix"] + short for short in ("max", "buckets", "count", "expect_max")}
    for short, rel in kernel.timeout_files(host.root, name).items():
        ret[short] = spec["sysctl_prefix"] + os.path.basename(rel)
    return ret


def require_global(host, flavour, what):
    if not kernel.global_writable(host.root, flavour):
        raise CommandExecutionError(
            f"{what} is global to the kernel and read-only in this network namespace: "
            "set it from the initial namespace (the host itself)"
        )


# Refusals by policy (a well-formed value this host should not take) are
# CommandExecutionError: Salt prints the reason alone, where a
# SaltInvocationError would print the whole docstring as if the syntax were wrong.
def check_ceiling(host, value, what, force):
    ceiling = sizing.ceiling(sizing.host_ram(host.root), host.bits)
    if value > ceiling and not force:
        raise CommandExecutionError(
            f"{what} {value} is above this host's ceiling {ceiling} ({sizing.MAX_RULE}); "
            "pass force=True to set it anyway"
        )


def _plan(host, rel, value, test, what):
    return {"file": rel, "old": snapshot.read_int(host.root, rel), "new": value, "test": test, "what": what}


def plan_max(host, value, force, test):
    """The table limit's change, every check made: the ceiling, the global knob, the entries held now."""
    value = numbers.integer(value, "max", 1, kernel.INT_MAX)
    force, test = numbers.boolean(force, "force"), numbers.boolean(test, "test")
    flavour, _ = snapshot.loaded(host)
    require_global(host, flavour, "max")
    check_ceiling(host, value, "max", force)
    count = snapshot.read_int(host.root, kernel.knob(flavour, "count"))
    if value < count and not force:
        raise CommandExecutionError(
            f"max {value} is below the {count} entries the table holds now: it would be full at "
            "once and drop every new flow; pass force=True to set it anyway"
        )
    return _plan(host, kernel.knob(flavour, "max"), value, test, "max")


def plan_buckets(host, value, force, test):
    """The hash table's resize, every check made; only kernels with a writable ``hashsize`` take it."""
    value = numbers.integer(value, "buckets", 1, kernel.HASHSIZE_MAX)
    force, test = numbers.boolean(force, "force"), numbers.boolean(test, "test")
    flavour, spec = snapshot.loaded(host)
    require_global(host, flavour, "buckets")
    check_ceiling(host, value, "buckets", force)
    path = paths.join(host.root, spec["hashsize"])
    if not os.path.exists(path) or not os.stat(path).st_mode & 0o222:
        raise CommandExecutionError(
            f"{path} is missing or read-only on this kernel: hashsize can only be set when "
            f"the module loads (options {spec['module']} hashsize={value} in /etc/modprobe.d)"
        )
    return _plan(host, spec["hashsize"], value, test, "buckets")


def plan_timeout(host, name, seconds, test):
    """One timeout's change, by the short name :py:func:`timeouts` gives it."""
    name, test = numbers.text(name, "name", 64), numbers.boolean(test, "test")
    flavour, _ = snapshot.loaded(host)
    files = kernel.timeout_files(host.root, flavour)
    if name not in files:
        raise SaltInvocationError(f"unknown conntrack timeout {numbers.shown(name)}; known: {', '.join(sorted(files))}")
    seconds = numbers.integer(seconds, "seconds", 1, kernel.TIMEOUT_MAX)
    return _plan(host, files[name], seconds, test, f"timeout {name}")


def apply(host, plan):
    """``{"old", "new"}`` of a plan; ``new`` is what the kernel reads back after the write.

    With ``test``, ``{"old", "new", "test": True, "comment"}``: what would be
    written, marked so that nobody takes it for a write.
    """
    if plan["test"]:
        done = "already" if plan["old"] == plan["new"] else f"would be {plan['new']} (now {plan['old']})"
        comment = f"test=True: {plan['what']} {done}; nothing written"
        return {"old": plan["old"], "new": plan["new"], "test": True, "comment": comment}
    if plan["old"] == plan["new"]:
        return {"old": plan["old"], "new": plan["new"]}
    path = paths.join(host.root, plan["file"])
    try:
        with open(path, "w", encoding="ascii") as fh:
            fh.write(f"{plan['new']}\n")
    except OSError as err:
        raise CommandExecutionError(f"cannot write {plan['new']} to {path}: {err}") from err
    return {"old": plan["old"], "new": snapshot.read_int(host.root, plan["file"])}
