"""
The firewall around connection tracking: the rules that need it, saved rules
rewritten without it, flows exempt from it (live and at boot), and unloading
the module chain.

Commands (``iptables-save``, ``nft``, ``iptables-restore``, ``rmmod``) are
found on ``PATH`` and in the sbin directories; files and kernel paths are
resolved against the minion option ``conntrack.root`` (default ``/``). Every
function that changes something takes ``test=True``: it then makes every
check a real run makes and changes nothing. Files are written only where
their kind belongs: saved rules ``/etc/sysconfig/ip(6)tables`` or
``/etc/iptables/rules.v4``/``rules.v6``; notrack ``/etc/nftables.d/*.nft`` or
``/etc/iptables/*.rules``; the nftables configs ``/etc/nftables.conf`` or
``/etc/sysconfig/nftables.conf``.

:depends: Linux; nft or iptables for notrack; rmmod for unload
"""

import os

from salt.exceptions import CommandExecutionError, SaltInvocationError

try:
    from saltext_conntrack import common, firewall, persistence, runtime
except ImportError as err:  # Salt prints this as the module's reason; docs/design.md
    raise ImportError(
        f"{err}: salt-ssh carries saltext.conntrack only where it is pip-installed on the master; "
        "minions get it from pip or saltutil.sync_all"
    ) from err

__virtualname__ = "conntrack_fw"


def __virtual__():
    return runtime.kernel.virtual(__grains__, __virtualname__)


def _root():
    return common.paths.root_of(__opts__)


def _release():
    return __grains__.get("kernelrelease") or os.uname().release


def dependents():
    """
    The firewall rules that need connection tracking, each with why.

    Reads the live rulesets (``iptables-save``, ``ip6tables-save``, ``nft list
    ruleset``, found on ``PATH`` or in sbin) and the saved rules files
    (``/etc/sysconfig/iptables``, ``/etc/iptables/rules.v4``,
    ``/etc/nftables.conf``, ...). State and conntrack matches, NAT, the CT and
    NOTRACK targets, connection marks and nft ``ct`` expressions all count.
    Returns ``[{source, table, rule, why}]``.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_fw.dependents
    """
    return firewall.dependents.find(_root())


# ---------------------------------------------------------------------------
# Unloading


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
    return runtime.module_chain.unload_plan(_root(), _release())


def _refuse_unload(plan, deps_found, force):
    if deps_found and not force:
        shown = "; ".join(f"{d['rule']} ({d['why']}, {d['source']})" for d in deps_found[:5])
        raise CommandExecutionError(
            f"{len(deps_found)} firewall rule(s) need conntrack, so it stays loaded: {shown}. "
            "Remove them first (see conntrack_fw.stateless) or pass force=True"
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


def unload(force=False, test=False):
    """
    Unload the conntrack module chain, consumers first, in :py:func:`unload_plan` order.

    Refuses while :py:func:`dependents` finds rules that need conntrack,
    unless ``force=True``. Refuses, even with ``force=True`` and before the
    first ``rmmod``, when :py:func:`unload_plan` lists a module ``in_use``
    (rules or sockets hold it, so ``rmmod`` would fail partway and leave a
    half-removed chain); ``test=True`` gives the same verdicts.
    On a kernel with conntrack built in it raises: nothing can be unloaded
    there. Runs ``rmmod NAME`` for each module and checks ``/proc/modules``
    afterwards; returns ``order``, ``removed`` and ``dependents``.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_fw.unload
        salt '*' conntrack_fw.unload force=True
    """
    force = common.numbers.boolean(force, "force")
    test = common.numbers.boolean(test, "test")
    plan = unload_plan()
    if plan["builtin"]:
        raise CommandExecutionError(plan["reason"])
    ret = {"order": plan["order"], "removed": [], "dependents": []}
    if not plan["loaded"]:
        return ret
    ret["dependents"] = firewall.dependents.find(_root())
    _refuse_unload(plan, ret["dependents"], force)
    if test:
        return ret
    for name in plan["order"]:
        proc = common.commands.run(["rmmod", name], check=False)
        if proc.returncode != 0:
            raise CommandExecutionError(
                f"rmmod {name} failed after unloading {ret['removed'] or 'nothing'}: "
                f"{(proc.stderr or proc.stdout).strip()}"
            )
        ret["removed"].append(name)
    left = [m for m in plan["order"] if m in (runtime.module_chain.proc_modules(_root()) or {})]
    if left:
        raise CommandExecutionError(f"still loaded after rmmod: {', '.join(left)}")
    return ret


# ---------------------------------------------------------------------------
# Saved rules without conntrack


def stateless(path="/etc/sysconfig/iptables", mode="comment", force=False, test=False):
    """
    Rewrite a saved iptables rules file so no rule uses state or conntrack matches.

    An ACCEPT rule whose only conntrack condition is ``--state NEW`` (or
    ``--ctstate NEW``) keeps its place and loses just that match
    (``-A INPUT -m state --state NEW -m tcp -p tcp --dport 22 -j ACCEPT``
    becomes ``-A INPUT -m tcp -p tcp --dport 22 -j ACCEPT``), so the service
    stays reachable. Every other rule with ``-m state``, ``--state``,
    ``-m conntrack`` or ``--ctstate``/``--ctstatus`` is commented out
    (``mode=comment``, the line becomes ``# conntrack.stateless: <rule>``) or
    dropped (``mode=remove``): dropping only its match would change its meaning
    (``-m state --state ESTABLISHED -j ACCEPT`` would accept everything).

    Taking an ACCEPT rule out of a chain whose policy is DROP, or whose last
    rule drops or rejects, takes traffic away from the host (typically the
    replies to its own connections, or SSH): that is refused unless
    ``force=True``. Every other line stays byte for byte. Where
    ``iptables-restore --test`` exists (``ip6tables-restore`` for files whose
    name has a 6), a result it rejects is never written. ``test=True`` gives
    the same verdict and writes nothing.

    Returns ``path``, ``changes`` keyed by ``line N`` (``{old: rule, new:
    rewritten rule, commented line or None}``), ``checked_with`` and ``written``.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_fw.stateless
        salt '*' conntrack_fw.stateless /etc/sysconfig/ip6tables mode=remove test=True
        salt '*' conntrack_fw.stateless force=True
    """
    test = common.numbers.boolean(test, "test")
    plan = firewall.stateless.plan(_root(), path, mode, force)
    return {**persistence.plans.result(_root(), plan, test), "checked_with": plan["checked_with"]}


# ---------------------------------------------------------------------------
# notrack


def notrack_rules(flows, backend="nft"):
    """
    The rules that exempt ``flows`` from connection tracking, both directions.

    ``flows`` is a list of ``{proto: tcp|udp|sctp|udplite, port: N}`` (or
    ``ports: [..]``). For each port, traffic to it and from it (the replies)
    is exempted in prerouting and output. ``backend=nft`` gives the body of a
    table ``inet conntrack_notrack`` with chains at priority -300;
    ``backend=iptables`` gives ``-A CONNTRACK_NOTRACK ... -j CT --notrack``
    rules for the raw table. Pure: reads and writes nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_fw.notrack_rules '[{proto: udp, port: 53}]'
        salt '*' conntrack_fw.notrack_rules '[{proto: tcp, ports: [80, 443]}]' backend=iptables
    """
    return firewall.notrack.rules(flows, backend)


def notrack_script(flows, backend="nft"):
    """
    A complete, idempotent script loading the notrack rules for ``backend``:
    ``nft -f`` input or ``iptables-restore --noflush`` input.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_fw.notrack_script '[{proto: udp, port: 53}]'
    """
    return firewall.notrack.script(flows, backend)


def notrack_persist(flows, backend="nft", path=None, test=False):
    """
    Write the notrack script for ``flows`` to ``path``.

    Default path: ``/etc/nftables.d/conntrack-notrack.nft`` (nft) or
    ``/etc/iptables/conntrack-notrack.rules`` (iptables, for
    ``iptables-restore --noflush``). The file holds only that script.

    Writing the file does not make boot load it: for nft,
    :py:func:`nft_include` adds it to the nftables service's config
    (:py:func:`notrack` with ``persist`` does that); the iptables file is
    loaded by no service (netfilter-persistent loads
    ``/etc/iptables/rules.v4``/``v6``, RHEL's iptables service
    ``/etc/sysconfig/iptables``): load it at boot with
    ``iptables-restore --noflush < FILE`` and
    ``ip6tables-restore --noflush < FILE``, after the firewall service.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_fw.notrack_persist '[{proto: udp, port: 53}]'
    """
    test = common.numbers.boolean(test, "test")
    return persistence.plans.result(_root(), firewall.notrack.file_plan(_root(), flows, backend, path), test)


def nft_include(include=firewall.notrack.DEFAULT_FILES["nft"], path=None, test=False):
    """
    Make the nftables service load ``include`` at boot: ensure the line
    ``include "INCLUDE"`` is the last rule line of its config.

    ``path``: ``/etc/nftables.conf`` (Debian, ``nftables.service``) or
    ``/etc/sysconfig/nftables.conf`` (RHEL); default: each of them that exists.
    The line goes at the end, after the ``flush ruleset`` those files start
    with; an earlier copy of the same line is moved there. Every other line
    stays byte for byte; a missing config is not created (there is no
    service to load it). Returns ``changes`` keyed by config path,
    ``written`` (the configs written) and ``configs`` (those holding the
    include after the call, or that would with ``test=True``).

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_fw.nft_include
        salt '*' conntrack_fw.nft_include path=/etc/sysconfig/nftables.conf test=True
    """
    test = common.numbers.boolean(test, "test")
    return _includes_result(firewall.notrack.include_plans(_root(), include, path), test)


def _includes_result(configs, test):
    ret = {"changes": {}, "written": [], "configs": [p["path"] for p in configs]}
    for plan in configs:
        ret["changes"].update(plan["changes"])
        if not test and persistence.plans.apply(_root(), plan):
            ret["written"].append(plan["path"])
    return ret


def backend():
    """
    The firewall backend this host uses: ``iptables`` when ``iptables-save``
    shows rules, else ``nft`` where nft is installed, else ``iptables``.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_fw.backend
    """
    if common.commands.which("iptables-save"):
        proc = common.commands.run(["iptables-save"], check=False)
        if proc.returncode == 0 and firewall.iptables_save.rules(proc.stdout):
            return "iptables"
    if common.commands.which("nft"):
        return "nft"
    if common.commands.which("iptables-restore"):
        return "iptables"
    raise CommandExecutionError("neither nft nor iptables is installed: cannot exempt flows")


def _live_plan(flows, chosen):
    """``[(change key, change, command, stdin)]``: what loading ``flows`` live would change."""
    rules, script = firewall.notrack.rules(flows, chosen), firewall.notrack.script(flows, chosen)
    if chosen == "nft":
        current, wanted = firewall.notrack.nft_loaded(), {"prerouting": rules, "output": rules}
        if current == wanted:
            return []
        return [
            (f"nft table inet {firewall.notrack.TABLE}", {"old": current, "new": wanted}, ["nft", "-f", "-"], script)
        ]
    out = []
    for cmd in ("iptables", "ip6tables"):
        if not common.commands.which(f"{cmd}-restore"):
            continue
        current = firewall.notrack.iptables_loaded(f"{cmd}-save")
        wanted = {"rules": rules, "jumps": ["OUTPUT", "PREROUTING"]}
        if current == wanted:
            continue
        text = script.replace("COMMIT\n", "")
        have = (current or {}).get("jumps", [])
        for hook in ("PREROUTING", "OUTPUT"):
            if hook not in have:
                text += f"-I {hook} -j {firewall.notrack.CHAIN}\n"
            # one jump per hook: duplicates (from an earlier run or by hand) go
            text += f"-D {hook} -j {firewall.notrack.CHAIN}\n" * max(0, have.count(hook) - 1)
        key = f"{cmd} raw {firewall.notrack.CHAIN}"
        out.append((key, {"old": current, "new": wanted}, [f"{cmd}-restore", "--noflush"], text + "COMMIT\n"))
    return out


def _boot_note(chosen, path, configs):
    """What boot will load of the persisted file, in a sentence."""
    if chosen == "nft" and path.endswith(".nft"):
        if configs:
            return (
                f"At boot the nftables service loads {path} through the include at the end of {' and '.join(configs)}"
            )
        return (
            f"At boot nothing loads {path}: there is no /etc/nftables.conf or "
            f"/etc/sysconfig/nftables.conf; add 'include \"{path}\"' to the config your firewall loads"
        )
    if chosen == "nft":
        return f"At boot nothing loads {path} (not an .nft file the nftables config can include)"
    return (
        f"At boot nothing loads {path}: netfilter-persistent loads /etc/iptables/rules.v4/v6 and "
        f"the iptables service /etc/sysconfig/iptables, not this file. Load it after the firewall "
        f"with 'iptables-restore --noflush < {path}' and 'ip6tables-restore --noflush < {path}' "
        "(e.g. a systemd oneshot unit)"
    )


def _persist_plans(flows, chosen, persist_to):
    """The notrack file plan and, for an nft file, the plans of the configs that include it."""
    if persist_to is False or persist_to is None:
        return []
    if persist_to is not True:
        common.numbers.text(persist_to, "persist", common.paths.PATH_MAX)
    plan = firewall.notrack.file_plan(_root(), flows, chosen, None if persist_to is True else persist_to)
    if chosen == "nft" and plan["path"].endswith(".nft"):
        return [plan, *firewall.notrack.include_plans(_root(), plan["path"])]
    return [plan]


def notrack(flows, backend=None, persist=None, test=False):
    """
    Exempt ``flows`` from connection tracking, in both directions, live (and at boot).

    ``flows``: ``[{proto: udp, port: 53}, {proto: tcp, ports: [80, 443]}]``.
    ``backend``: ``nft`` (table ``inet conntrack_notrack``, chains at priority
    -300 on prerouting and output) or ``iptables`` (chain ``CONNTRACK_NOTRACK``
    in the raw table, jumped to once from PREROUTING and once from OUTPUT,
    duplicate jumps removed, for iptables and ip6tables); default: what the
    host uses (:py:func:`backend`). The managed table or chain is replaced as a
    whole, atomically.

    ``persist``: ``True`` for the default file (:py:func:`notrack_persist`), a
    path, or nothing. For nft the file is also included at the end of the
    nftables configs that exist (:py:func:`nft_include`). Every input and
    every file is checked before the live rules change.

    Returns ``backend``, ``changes`` and ``boot`` (what boot will load, or None).

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_fw.notrack '[{proto: udp, port: 53}]'
        salt '*' conntrack_fw.notrack '[{proto: tcp, ports: [80, 443]}]' backend=nft test=True
        salt '*' conntrack_fw.notrack '[{proto: udp, port: 53}]' persist=True
    """
    test = common.numbers.boolean(test, "test")
    firewall.notrack.flows(flows)
    if backend is not None:
        firewall.notrack.backend_name(backend)
    if persist is not None and not isinstance(persist, (bool, str)):
        raise SaltInvocationError(f"persist must be true, false or a path, got {persist!r}"[:200])
    chosen = backend or globals()["backend"]()
    files = _persist_plans(flows, chosen, persist)
    live = _live_plan(flows, chosen)
    changes = {key: change for key, change, _, _ in live}
    for plan in files:
        changes.update(plan["changes"])
    boot = _boot_note(chosen, files[0]["path"], [p["path"] for p in files[1:]]) if files else None
    if not test:
        for _, _, cmd, stdin in live:
            common.commands.run(cmd, stdin=stdin)
        for plan in files:
            persistence.plans.apply(_root(), plan)
    return {"backend": chosen, "changes": changes, "boot": boot}
