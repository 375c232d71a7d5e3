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
from collections.abc import Mapping
from typing import Any

from salt.exceptions import CommandExecutionError

try:
    from saltext_conntrack import common, firewall, persistence, runtime
except ImportError as err:  # Salt prints this as the module's reason (salt-ssh from file_roots: docs/design.md)
    raise ImportError(
        f"{err}: salt-ssh carries saltext.conntrack only where it is pip-installed on the master"
    ) from err

__virtualname__ = "conntrack_fw"

# Set by Salt's loader when it loads this file (declared here for readers and type checkers).
__opts__: dict[str, Any]
__grains__: Mapping[str, Any]


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
    firewall.rmmod.refuse(plan, ret["dependents"], force)
    if not test:
        firewall.rmmod.remove(_root(), plan, ret["removed"])
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
    return firewall.notrack.apply_includes(_root(), firewall.notrack.include_plans(_root(), include, path), test)


def notrack(flows, backend=None, persist=None, test=False, accept_untracked=False):
    """
    Exempt ``flows`` from connection tracking, in both directions, live (and at boot).

    ``flows``: ``[{proto: udp, port: 53}, {proto: tcp, ports: [80, 443]}]``.
    ``backend``: ``nft`` (table ``inet conntrack_notrack``, chains at priority
    -300 on prerouting and output) or ``iptables`` (chain ``CONNTRACK_NOTRACK``
    in the raw table, jumped to once from PREROUTING and once from OUTPUT,
    duplicate jumps removed, for iptables and ip6tables); default: what the
    host uses (``iptables`` when ``iptables-save`` shows rules, else ``nft``
    where nft is installed, else ``iptables``). The managed table or chain is
    replaced as a whole, atomically.

    ``persist``: ``True`` for the default file (:py:func:`notrack_persist`), a
    path, or nothing. For nft the file is also included at the end of the
    nftables configs that exist (:py:func:`nft_include`). Every input and
    every file is checked before the live rules change.

    ``accept_untracked``: the host's rules are read first (``nft list
    ruleset``, ``iptables-save``, ``ip6tables-save``); where a chain would drop
    the flows once untracked (a drop policy with only a ``ct state
    established,related`` accept for them), the call is refused naming the
    rule, in ``test=True`` too, and nothing is loaded. With ``True``, a ``ct
    state untracked`` accept for those ports goes first in each such chain,
    loaded before the exemption (live only). A NAT rule covering the flows
    always refuses.

    Returns ``backend``, ``changes`` and ``boot`` (what boot will load, or None).

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_fw.notrack '[{proto: udp, port: 53}]'
        salt '*' conntrack_fw.notrack '[{proto: tcp, ports: [80, 443]}]' backend=nft test=True
        salt '*' conntrack_fw.notrack '[{proto: udp, port: 53}]' persist=True
        salt '*' conntrack_fw.notrack '[{proto: udp, port: 53}]' accept_untracked=True
    """
    test = common.numbers.boolean(test, "test")
    plan = firewall.notrack.plan(_root(), flows, backend, persist, accept_untracked)
    if not test:
        firewall.notrack.apply(_root(), plan)
    return {k: plan[k] for k in ("backend", "changes", "boot")}
