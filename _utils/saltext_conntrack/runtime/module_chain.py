"""The conntrack module chain as the kernel's reference counts give it: what
holds what, in which order it can be unloaded, and whether it is built in.
Reads ``/proc/modules``, ``/sys/module`` and ``modules.builtin`` under a root."""

import os

from salt.exceptions import CommandExecutionError

from saltext_conntrack.common import paths
from saltext_conntrack.runtime import kernel


def proc_modules(root):
    """``{name: {"refcnt", "used_by"}}`` from /proc/modules, or None without it."""
    try:
        with open(paths.join(root, "/proc/modules"), encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return None
    mods = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        used_by = [m for m in fields[3].split(",") if m and m != "-"]
        mods[fields[0]] = {"refcnt": int(fields[2]) if fields[2].isdigit() else 0, "used_by": used_by}
    return mods


def _sys_refcnt(root, name, default):
    try:
        with open(paths.join(root, f"/sys/module/{name}/refcnt"), encoding="ascii") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def _holders(root, name, proc):
    try:
        return sorted(os.listdir(paths.join(root, f"/sys/module/{name}/holders")))
    except OSError:
        return sorted(proc.get(name, {}).get("used_by", []))


def builtin(root, release, proc=None):
    """``(module, reason)`` when conntrack is built into the kernel, else ``(None, None)``.

    Without /proc/modules (no loadable module support) a ``/sys/module/<core>``
    directory means it is built in; with it, a core module that is not loaded
    but listed in ``modules.builtin`` is.
    """
    proc = proc_modules(root) if proc is None else proc
    if proc is None:
        exists = [m for m in kernel.CORE_MODULES if os.path.isdir(paths.join(root, f"/sys/module/{m}"))]
        if exists:
            return exists[0], (
                f"this kernel has no /proc/modules (no loadable module support): "
                f"{exists[0]} is built in and cannot be unloaded"
            )
        return None, None
    if any(m in proc for m in kernel.CORE_MODULES):
        return None, None
    module = next((m for m in kernel.CORE_MODULES if kernel.builtin(root, release, m)), None)
    if module:
        return module, f"{module} is built into this kernel (modules.builtin) and cannot be unloaded"
    return None, None


def _order(chain, holders, refcnt):
    """A module after every module holding it; among those ready together, lower refcnt first."""
    removed = []
    while len(removed) < len(chain):
        ready = sorted(
            (name for name in chain if name not in removed and all(h in removed for h in holders[name])),
            key=lambda n: (refcnt[n] - len(holders[n]), refcnt[n], n),
        )
        if not ready:
            raise CommandExecutionError(
                f"the holders of {', '.join(sorted(set(chain) - set(removed)))} form a cycle: cannot order the unload"
            )
        removed.append(ready[0])
    return removed


# Modules nf_conntrack itself loads (it holds them): unloaded after it when
# nothing outside the chain holds them, as ``modprobe -r nf_conntrack`` does.
DEPENDENCY_PREFIXES = ("nf_defrag_",)


def _dependencies(root, proc, chain):
    """The chain's own dependencies that only the chain holds, with their refcnt."""
    found = {}
    for name in sorted(proc):
        if name in chain or not name.startswith(DEPENDENCY_PREFIXES):
            continue
        holders = _holders(root, name, proc)
        refcnt = _sys_refcnt(root, name, proc[name]["refcnt"])
        if holders and set(holders) <= chain and refcnt == len(holders):
            found[name] = refcnt
    return found


def unload_plan(root, release):
    """``{module, loaded, builtin, reason, order, refcnt, in_use}`` of the conntrack chain.

    ``order``: every consumer after the modules holding it, then the core,
    then the core's own dependencies (``nf_defrag_ipv4``, ``nf_defrag_ipv6``)
    that nothing but the chain holds."""
    proc = proc_modules(root)
    ret = {"module": None, "loaded": False, "builtin": False, "reason": None,
           "order": [], "refcnt": {}, "in_use": []}  # fmt: skip
    module, reason = builtin(root, release, proc)
    if module:
        ret.update(module=module, builtin=True, loaded=True, reason=reason)
        return ret
    core = next((m for m in kernel.CORE_MODULES if m in (proc or {})), None)
    if core is None:
        ret["module"] = "nf_conntrack"
        if proc is None:
            ret["reason"] = "this kernel has no loadable modules and no conntrack"
        return ret
    ret.update(module=core, loaded=True)
    chain, todo = set(), [core]
    while todo:
        name = todo.pop()
        if name not in chain:
            chain.add(name)
            todo.extend(h for h in _holders(root, name, proc) if h not in chain)
    holders = {name: [h for h in _holders(root, name, proc) if h in chain] for name in chain}
    refcnt = {name: _sys_refcnt(root, name, proc.get(name, {}).get("refcnt", 0)) for name in chain}
    ret["order"] = _order(chain, holders, refcnt)
    ret["in_use"] = [n for n in ret["order"] if refcnt[n] > len(holders[n])]
    deps = _dependencies(root, proc, chain)
    ret["order"] += list(deps)
    ret["refcnt"] = {**refcnt, **deps}
    return ret
