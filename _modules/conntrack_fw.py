"""
Live firewall and kernel-module actions around connection tracking:
unloading the conntrack module chain and exempting flows from tracking.

Files are left to ``conntrack_files``; this module runs commands (``rmmod``,
``nft``, ``iptables-restore``) found on ``PATH`` and reads ``/proc/modules``
and ``/sys/module`` under the minion option ``conntrack.root``.

:depends: Linux; nft or iptables for notrack; rmmod for unload
"""

import logging
import os
import re
import shutil
import subprocess

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "conntrack_fw"

CORE = ("nf_conntrack", "ip_conntrack")


def __virtual__():
    if __grains__.get("kernel") != "Linux":  # noqa: F821
        return False, "conntrack_fw: connection tracking exists only on Linux"
    return __virtualname__


def _root():
    return __opts__.get("conntrack.root", "/") or "/"  # noqa: F821


def _path(rel):
    return os.path.join(_root(), rel.lstrip("/"))


def _which(cmd):
    return shutil.which(cmd, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def _run(args, stdin=None, check=True):
    exe = _which(args[0])
    if not exe:
        raise CommandExecutionError(f"{args[0]} is not installed on this host")
    proc = subprocess.run(
        [exe, *args[1:]], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    if check and proc.returncode != 0:
        raise CommandExecutionError(
            f"{' '.join(args)} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()}"
        )
    return proc


# ---------------------------------------------------------------------------
# Unloading


def _proc_modules():
    """{name: {"refcnt": int, "used_by": [..]}} from /proc/modules, or None without it."""
    try:
        with open(_path("/proc/modules"), encoding="utf-8") as fh:
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


def _sys_refcnt(name, default):
    try:
        with open(_path(f"/sys/module/{name}/refcnt"), encoding="ascii") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def _holders(name, proc):
    try:
        return sorted(os.listdir(_path(f"/sys/module/{name}/holders")))
    except OSError:
        return sorted(proc.get(name, {}).get("used_by", []))


def _builtin(module):
    release = __grains__.get("kernelrelease") or os.uname().release  # noqa: F821
    try:
        with open(_path(f"/lib/modules/{release}/modules.builtin"), encoding="utf-8") as fh:
            return re.search(rf"(^|/){module}\.ko", fh.read(), re.M) is not None
    except OSError:
        return False


def unload_plan():
    """
    The order in which the conntrack module chain would be unloaded, from the
    kernel's own reference counts.

    The chain is ``nf_conntrack`` (``ip_conntrack`` on CentOS 5) and every
    module that holds it, directly or not (``/sys/module/*/holders``, or the
    used-by column of ``/proc/modules``). A module comes after every module
    holding it; among modules ready together, lower ``refcnt`` goes first.
    ``in_use`` lists modules whose refcnt is above their module holders: rules
    or sockets hold them and ``rmmod`` will refuse. ``builtin`` is true (with
    ``reason``) where the kernel has conntrack built in: nothing can be unloaded.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_fw.unload_plan
    """
    proc = _proc_modules()
    ret = {"module": None, "loaded": False, "builtin": False, "reason": None,
           "order": [], "refcnt": {}, "in_use": []}  # fmt: skip
    if proc is None:
        exists = [m for m in CORE if os.path.isdir(_path(f"/sys/module/{m}"))]
        ret.update(module=exists[0] if exists else "nf_conntrack", builtin=bool(exists), loaded=bool(exists))
        ret["reason"] = (
            f"this kernel has no /proc/modules (no loadable module support): "
            f"{ret['module']} is built in and cannot be unloaded"
            if exists
            else "this kernel has no loadable modules and no conntrack"
        )
        return ret
    core = next((m for m in CORE if m in proc), None)
    if core is None:
        builtin = next((m for m in CORE if _builtin(m)), None)
        if builtin:
            ret.update(module=builtin, builtin=True, loaded=True,
                       reason=f"{builtin} is built into this kernel (modules.builtin) and cannot be unloaded")  # fmt: skip
        else:
            ret["module"] = "nf_conntrack"
        return ret
    ret.update(module=core, loaded=True)
    chain, todo = set(), [core]
    while todo:
        name = todo.pop()
        if name in chain:
            continue
        chain.add(name)
        todo.extend(h for h in _holders(name, proc) if h not in chain)
    holders = {name: [h for h in _holders(name, proc) if h in chain] for name in chain}
    refcnt = {name: _sys_refcnt(name, proc.get(name, {}).get("refcnt", 0)) for name in chain}
    removed = []
    while len(removed) < len(chain):
        ready = sorted(
            (name for name in chain if name not in removed and all(h in removed for h in holders[name])),
            key=lambda n: (refcnt[n] - len(holders[n]), refcnt[n], n),
        )
        if not ready:
            raise CommandExecutionError(
                f"the holders of {', '.join(sorted(set(chain) - set(removed)))} form a cycle: "
                "cannot order the unload"
            )
        removed.append(ready[0])
    ret["order"] = removed
    ret["refcnt"] = refcnt
    ret["in_use"] = [n for n in removed if refcnt[n] > len(holders[n])]
    return ret


def unload(force=False, test=False):
    """
    Unload the conntrack module chain, consumers first, in :py:func:`unload_plan` order.

    Refuses while ``conntrack.dependents`` finds rules that need conntrack,
    unless ``force=True``. Refuses, even with ``force=True`` and before the
    first ``rmmod``, when :py:func:`unload_plan` lists a module ``in_use``
    (rules or sockets hold it, so ``rmmod`` would fail partway and leave a
    half-removed chain); ``test=True`` gives the same verdicts.
    On a kernel with conntrack built in it raises: nothing can be unloaded
    there. Runs ``rmmod NAME`` (from ``PATH``) for each module and checks
    ``/proc/modules`` afterwards; returns ``order`` and ``removed``.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_fw.unload
        salt '*' conntrack_fw.unload force=True
    """
    if not isinstance(force, bool) or not isinstance(test, bool):
        raise SaltInvocationError("force and test must be true or false")
    plan = unload_plan()
    if plan["builtin"]:
        raise CommandExecutionError(plan["reason"])
    ret = {"order": plan["order"], "removed": [], "dependents": []}
    if not plan["loaded"]:
        return ret
    deps = __salt__["conntrack.dependents"]()  # noqa: F821
    ret["dependents"] = deps
    if deps and not force:
        shown = "; ".join(f"{d['rule']} ({d['why']}, {d['source']})" for d in deps[:5])
        raise CommandExecutionError(
            f"{len(deps)} firewall rule(s) need conntrack, so it stays loaded: {shown}. "
            "Remove them first (see conntrack.stateless) or pass force=True"
        )
    if plan["in_use"]:
        # rmmod would refuse these once it reaches them, after unloading the
        # consumers before them: a half-removed chain. Refuse before the first.
        held = ", ".join(f"{n} (refcnt {plan['refcnt'].get(n)})" for n in plan["in_use"])
        raise CommandExecutionError(
            f"{held} in use by rules or sockets, so rmmod would refuse it partway through "
            f"the unload order ({', '.join(plan['order'])}): nothing was unloaded. "
            "Remove what holds it first (force does not override this)"
        )
    if test:
        return ret
    for name in plan["order"]:
        proc = _run(["rmmod", name], check=False)
        if proc.returncode != 0:
            raise CommandExecutionError(
                f"rmmod {name} failed after unloading {ret['removed'] or 'nothing'}: "
                f"{(proc.stderr or proc.stdout).strip()}"
            )
        ret["removed"].append(name)
    left = [m for m in plan["order"] if m in (_proc_modules() or {})]
    if left:
        raise CommandExecutionError(f"still loaded after rmmod: {', '.join(left)}")
    return ret


# ---------------------------------------------------------------------------
# notrack


def backend():
    """
    The firewall backend this host uses: ``iptables`` when ``iptables-save``
    shows rules, else ``nft`` where nft is installed, else ``iptables``.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_fw.backend
    """
    if _which("iptables-save"):
        proc = _run(["iptables-save"], check=False)
        if proc.returncode == 0 and re.search(r"^-A ", proc.stdout, re.M):
            return "iptables"
    if _which("nft"):
        return "nft"
    if _which("iptables-restore"):
        return "iptables"
    raise CommandExecutionError("neither nft nor iptables is installed: cannot exempt flows")


_NFT_TABLE = "conntrack_notrack"
_IPT_CHAIN = "CONNTRACK_NOTRACK"


def _nft_current():
    """{chain: [rule, ...]} of our nft table, or None when it does not exist."""
    proc = _run(["nft", "list", "table", "inet", _NFT_TABLE], check=False)
    if proc.returncode != 0:
        return None
    chains, chain = {}, None
    for line in proc.stdout.splitlines():
        line = line.strip()
        match = re.match(r"chain (\S+) \{", line)
        if match:
            chain = chains.setdefault(match.group(1), [])
            continue
        if chain is None or not line or line == "}" or line.startswith("type "):
            continue
        chain.append(line)
    return chains


def _ipt_current(cmd):
    proc = _run([cmd, "-t", "raw"], check=False)
    if proc.returncode != 0:
        return None
    rules, jumps = [], []
    for line in proc.stdout.splitlines():
        if line.startswith(f"-A {_IPT_CHAIN} "):
            rules.append(line)
        elif re.fullmatch(rf"-A (PREROUTING|OUTPUT) -j {_IPT_CHAIN}", line):
            jumps.append(line.split()[1])
    return {"rules": rules, "jumps": sorted(jumps)}


def notrack(flows, backend=None, test=False):  # pylint: disable=redefined-outer-name
    """
    Exempt ``flows`` from connection tracking, in both directions, live.

    ``flows``: ``[{proto: udp, port: 53}, {proto: tcp, ports: [80, 443]}]``.
    ``backend``: ``nft`` (table ``inet conntrack_notrack``, chains at priority
    -300 on prerouting and output) or ``iptables`` (chain ``CONNTRACK_NOTRACK``
    in the raw table, jumped to once from PREROUTING and once from OUTPUT,
    duplicate jumps removed, for iptables and ip6tables); default: what the host uses (:py:func:`backend`). The managed
    table or chain is replaced as a whole, atomically. Returns ``backend`` and
    ``changes``.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_fw.notrack '[{proto: udp, port: 53}]'
        salt '*' conntrack_fw.notrack '[{proto: tcp, ports: [80, 443]}]' backend=nft test=True
    """
    chosen = backend or globals()["backend"]()
    rules = __salt__["conntrack_files.notrack_rules"](flows, chosen)  # noqa: F821
    script = __salt__["conntrack_files.notrack_script"](flows, chosen)  # noqa: F821
    changes = {}
    if chosen == "nft":
        current = _nft_current()
        wanted = {"prerouting": rules, "output": rules}
        if current != wanted:
            changes[f"nft table inet {_NFT_TABLE}"] = {"old": current, "new": wanted}
            if not test:
                _run(["nft", "-f", "-"], stdin=script)
    else:
        for cmd in ("iptables", "ip6tables"):
            if not _which(f"{cmd}-restore"):
                continue
            current = _ipt_current(f"{cmd}-save")
            wanted = {"rules": rules, "jumps": ["OUTPUT", "PREROUTING"]}
            if current == wanted:
                continue
            changes[f"{cmd} raw {_IPT_CHAIN}"] = {"old": current, "new": wanted}
            if test:
                continue
            text = script.replace("COMMIT\n", "")
            have = (current or {}).get("jumps", [])
            for hook in ("PREROUTING", "OUTPUT"):
                if hook not in have:
                    text += f"-I {hook} -j {_IPT_CHAIN}\n"
                # one jump per hook: duplicates (from an earlier run or by hand) go
                text += f"-D {hook} -j {_IPT_CHAIN}\n" * max(0, have.count(hook) - 1)
            _run([f"{cmd}-restore", "--noflush"], stdin=text + "COMMIT\n")
    return {"backend": chosen, "changes": changes}
