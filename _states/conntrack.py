"""
States that keep the conntrack fixes an operator makes by hand true.

Each state decides and reports; the work is done by the ``conntrack``,
``conntrack_files`` and ``conntrack_fw`` execution modules. Every state
validates its input before touching anything, honours ``test=True`` (reports
exactly what would change, writes nothing), changes nothing on a second run,
and reports changes as ``{"what": {"old": ..., "new": ...}}``.

.. code-block:: yaml

    conntrack-size:
      conntrack.tuned:
        - max: auto
        - buckets: auto
        - timeouts:
            tcp_established: 3600

Where these differ from Salt's ``sysctl.present`` and ``kmod``: a key that
does not exist yet because conntrack is not loaded is persisted and reported
as pending, not failed; files are written atomically with mode and owner
kept; ``test=True`` compares the persisted file too; settings are made to
survive a module reload (modprobe.d ``options``, a udev rule,
``IPTABLES_SYSCTL_LOAD_LIST``); unloading follows the kernel's reference
counts and says so when conntrack is built in instead of pretending.
"""

import logging
from collections.abc import Callable, Mapping
from typing import Any

from salt.exceptions import CommandExecutionError, SaltInvocationError

try:
    from saltext_conntrack import common, persistence
except ImportError as err:  # Salt prints this as the module's reason (salt-ssh from file_roots: docs/design.md)
    raise ImportError(
        f"{err}: salt-ssh carries saltext.conntrack only where it is pip-installed on the master"
    ) from err

log = logging.getLogger(__name__)

__virtualname__ = "conntrack"

# Set by Salt's loader when it loads this file (declared here for readers and type checkers).
__opts__: dict[str, Any]
__salt__: Mapping[str, Callable[..., Any]]

ERRORS = (CommandExecutionError, SaltInvocationError)


def __virtual__():
    if "conntrack_files.tune" in __salt__:
        return __virtualname__
    return False, "conntrack states need the conntrack_files execution module (Linux only)"


def _ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def _test():
    return bool(__opts__.get("test"))


def _fail(ret, err):
    ret["result"] = False
    ret["comment"] = str(err)
    return ret


def _apply(name, fun, *args, **kwargs):
    """``(ret, result)`` of the module function that plans and applies (``test``
    from the run), or ``(failed ret, None)``: the one way a state calls its module."""
    ret = _ret(name)
    try:
        res = __salt__[fun](*args, test=_test(), **kwargs)
    except ERRORS as err:
        return _fail(ret, err), None
    ret["changes"] = res["changes"]
    return ret, res


def _finish(ret, what, pending=None):
    test = _test()
    parts = []
    if ret["changes"]:
        verb = "would change" if test else "changed"
        parts.append(f"{what}: {verb} {', '.join(sorted(ret['changes']))}")
        if test:
            ret["result"] = None
    else:
        parts.append(f"{what}: already as wanted")
    if pending:
        parts.append(pending)
    ret["comment"] = ". ".join(parts)
    return ret


def tuned(
    name,
    max=None,
    buckets=None,
    timeouts=None,
    persist=None,
    survive_reload=True,
    force=False,
):
    """
    Keep the conntrack table size and timeouts: at runtime, persisted, and
    across module reloads.

    max
        Table limit (``nf_conntrack_max``): an integer or ``auto`` (the size
        ``conntrack.recommend`` gives for this host's RAM, or the current
        limit where that is larger: ``auto`` never lowers). An explicit
        integer may lower it, within ``conntrack.set_max``'s checks.

    buckets
        Hash table size (``hashsize``): an integer or ``auto`` (never lowers either).

    timeouts
        Mapping of short timeout names (``tcp_established``, ``udp``, ...) to seconds.

    persist
        The sysctl file to persist in. Default ``/etc/sysctl.d/90-conntrack.conf``,
        or ``/etc/sysctl.conf`` where there is no ``/etc/sysctl.d``.

    survive_reload
        Default true: also write ``options nf_conntrack hashsize=N`` to
        ``/etc/modprobe.d/conntrack.conf`` (when buckets is given), a udev rule
        re-applying the sysctls when the module loads (where udev runs), and
        ``IPTABLES_SYSCTL_LOAD_LIST`` in ``/etc/sysconfig/ip(6)tables-config``
        (where those files exist). Where conntrack is built into the kernel
        (``modules.builtin``, or no ``/proc/modules``) the modprobe options
        and the udev rule are skipped, since they would never apply, and the
        comment says so.

    force
        Allow sizes above the RAM formula's ceiling.

    When conntrack is not loaded yet, the values are persisted and reported as
    pending: they apply when the module loads.

    At boot the sysctl files are applied in order and the last one setting a
    key wins: the state fails (after persisting) and names file, key and value
    when a file applied after ``persist`` (a later name in ``/etc/sysctl.d``,
    or ``/etc/sysctl.conf``) sets one of its keys, or the alias
    ``net.nf_conntrack_max``, to another value. It does not edit those files.

    .. code-block:: yaml

        conntrack-size:
          conntrack.tuned:
            - max: auto
            - buckets: 262144
            - timeouts:
                tcp_established: 3600
                udp: 30
    """
    ret, res = _apply(
        name, "conntrack_files.tune", max=max, buckets=buckets, timeouts=timeouts,
        persist=persist, survive_reload=survive_reload, force=force,
    )  # fmt: skip
    if res is None:
        return ret
    _finish(ret, "conntrack tuning", res["pending"])
    if res["overrides"]:
        where = "; ".join(f"{o['file']} sets {o['key']} = {o['value']}" for o in res["overrides"])
        ret["result"] = False
        ret["comment"] += (
            f". At boot, files applied after {res['persist']} override it (the last file wins): "
            f"{where}. Remove those lines or make them agree"
        )
    return ret


def iptables_config(name="/etc/sysconfig/iptables-config", settings=None, **kwargs):
    """
    Enforce keys of a RHEL ``iptables-config`` (or ``ip6tables-config``) file.

    The file is a shell script sourced by root, so values are checked first:
    yes/no keys take only yes/no, ``IPTABLES_MODULES`` only module names,
    ``IPTABLES_SYSCTL_LOAD_LIST`` only sysctl name parts, ``*_RESTORE_WAIT*``
    only digits. Anything else is refused before the file is touched. Written
    as ``KEY="value"``; a commented default (``#KEY=...``) is replaced in
    place; every other line stays byte for byte. Keys can be given in
    ``settings`` or directly as arguments.

    .. code-block:: yaml

        /etc/sysconfig/iptables-config:
          conntrack.iptables_config:
            - settings:
                IPTABLES_MODULES_UNLOAD: "no"
                IPTABLES_SYSCTL_LOAD_LIST: ".nf_conntrack"
    """
    wanted = dict(settings or {}) if isinstance(settings, (dict, type(None))) else settings
    if isinstance(wanted, dict):
        wanted.update({k: v for k, v in kwargs.items() if k.startswith(("IPTABLES_", "IP6TABLES_"))})
    if not wanted:
        return _fail(_ret(name), "iptables_config needs settings: a mapping of IPTABLES_* keys")
    ret, res = _apply(name, "conntrack_files.iptables_config", wanted, path=name)
    return ret if res is None else _finish(ret, name)


def _blacklist(name, names, hard, path, present):
    ret, res = _apply(
        name, "conntrack_files.blacklist", name if names is None else names, hard=hard, present=present, path=path
    )
    if res is None:
        return ret
    _finish(ret, path)
    if res.get("elsewhere"):
        where = "; ".join(f"{m} in {', '.join(p)}" for m, p in res["elsewhere"].items())
        ret["result"] = False
        ret["comment"] += f". Still blacklisted by other files this state does not own: {where}"
    if res.get("warning"):
        ret["comment"] += f". Note: {res['warning']}"
    return ret


def blacklisted(name, names=None, hard=False, path=persistence.module_files.BLACKLIST_FILE):
    """
    Blacklist kernel modules in a modprobe.d file.

    ``blacklist NAME`` alone only stops loading by alias; ``hard: true`` also
    writes ``install NAME /bin/false`` so explicit loads fail too. Module names
    are checked (letters, digits, ``_``, ``-``). A soft blacklist of
    ``nf_conntrack`` without ``nft_ct``, ``xt_conntrack`` and ``xt_state``
    does not keep it out: a rule load pulls it in as their dependency (the
    comment says so).

    .. code-block:: yaml

        no-conntrack:
          conntrack.blacklisted:
            - names: [nf_conntrack, xt_state, xt_conntrack]
            - hard: true
    """
    return _blacklist(name, names, hard, path, True)


def not_blacklisted(name, names=None, path=persistence.module_files.BLACKLIST_FILE):
    """
    Remove ``blacklist NAME`` and ``install NAME /bin/false`` lines from a
    modprobe.d file. Fails (after cleaning its own file) when another file in
    ``/etc/modprobe.d`` still blacklists a module.

    .. code-block:: yaml

        conntrack-allowed:
          conntrack.not_blacklisted:
            - names: [nf_conntrack]
    """
    return _blacklist(name, names, False, path, False)


def unloaded(name, force=False):
    """
    Unload the conntrack module chain, consumers first, in the order the
    kernel's reference counts give (``/sys/module/*/holders``, ``refcnt``).

    Refuses while ``conntrack.dependents`` shows rules that need conntrack,
    unless ``force: true``; refuses before unloading anything, even with
    ``force: true``, while rules or sockets hold a module of the chain (rmmod
    would stop halfway). On a kernel with conntrack built in it fails and
    says so: nothing can be unloaded there.

    .. code-block:: yaml

        conntrack-gone:
          conntrack.unloaded:
            - force: false
    """
    ret = _ret(name)
    plan = {}
    try:
        common.numbers.boolean(force, "force")
        plan = __salt__["conntrack_fw.unload_plan"]()
        if plan["builtin"]:
            return _fail(ret, plan["reason"])
        if not plan["loaded"]:
            ret["comment"] = f"{plan['module']} is not loaded"
            return ret
        res = __salt__["conntrack_fw.unload"](force=force, test=_test())
    except ERRORS as err:
        _fail(ret, err)
        if not _test() and plan.get("order"):
            # Report what did go before the failure: never more, never less.
            try:
                left = __salt__["conntrack_fw.unload_plan"]()["order"]
            except ERRORS:
                left = None
            if left is not None and left != plan["order"]:
                ret["changes"] = {"loaded modules": {"old": plan["order"], "new": left}}
        return ret
    order = res["order"]
    ret["changes"] = {"loaded modules": {"old": order, "new": []}}
    _finish(ret, "conntrack modules")
    ret["comment"] += f" (unload order: {', '.join(order)})"
    return ret


def stateless(name="/etc/sysconfig/iptables", mode="comment", force=False):
    """
    Keep a saved iptables rules file free of state and conntrack matches.

    An ACCEPT rule whose only conntrack condition is ``--state NEW`` (or
    ``--ctstate NEW``) keeps its place without that match, so the service it
    opens stays open. Every other rule using ``-m state``/``--state``/
    ``-m conntrack``/``--ctstate`` is commented out (``mode: comment``) or
    removed (``mode: remove``); the changes list each rule.

    Taking an ACCEPT rule (``--state ESTABLISHED,RELATED -j ACCEPT``) out of a
    chain whose policy is DROP, or that ends with a DROP or REJECT rule, would
    cut the host off from traffic it gets now (the replies to its own
    connections, SSH): the state fails and names those rules unless
    ``force: true``, in test mode too. Where ``iptables-restore --test``
    exists, a result it rejects is never written.

    .. code-block:: yaml

        /etc/sysconfig/iptables:
          conntrack.stateless:
            - mode: comment
            - force: false
    """
    ret, res = _apply(name, "conntrack_fw.stateless", name, mode=mode, force=force)
    if res is None:
        return ret
    _finish(ret, name)
    if res.get("checked_with"):
        ret["comment"] += f" (checked with {res['checked_with']} --test)"
    return ret


def notrack(name, flows, backend=None, persist=None, accept_untracked=False):
    """
    Exempt flows from connection tracking in both directions.

    flows
        ``[{proto: udp, port: 53}, {proto: tcp, ports: [80, 443]}]``.

    backend
        ``nft`` (table ``inet conntrack_notrack``, priority -300) or
        ``iptables`` (raw table chain ``CONNTRACK_NOTRACK``); default: what
        the host uses.

    persist
        ``true`` for the default file (``/etc/nftables.d/conntrack-notrack.nft``
        or ``/etc/iptables/conntrack-notrack.rules``), a path, or nothing.
        For nft, the line ``include "FILE"`` is also kept at the end of
        ``/etc/nftables.conf`` (Debian) and ``/etc/sysconfig/nftables.conf``
        (RHEL), where they exist, so the nftables service loads it at boot.
        The iptables file is NOT loaded at boot by any service
        (netfilter-persistent and RHEL's iptables service load their own
        saved rules): load it with ``iptables-restore --noflush < FILE`` (and
        ``ip6tables-restore``) after the firewall starts. The comment says
        what boot will load.

    accept_untracked
        Untracked packets are in no ``ct state`` but ``untracked``. The
        host's rules are read first (``nft list ruleset``, ``iptables-save``):
        where a chain would drop the exempted flows once untracked (policy
        drop with only a ``ct state established,related`` accept for them),
        the state fails naming the rule, in ``test=True`` too, and nothing is
        loaded. With ``true``, a ``ct state untracked`` accept for those ports
        is inserted first in each such chain, in the same change (live only:
        add it to your firewall's own config too). A NAT rule that covers
        the flows always refuses: untracked packets skip NAT.

    .. code-block:: yaml

        dns-untracked:
          conntrack.notrack:
            - flows:
                - proto: udp
                  port: 53
            - persist: true
    """
    ret, res = _apply(
        name, "conntrack_fw.notrack", flows, backend=backend, persist=persist, accept_untracked=accept_untracked
    )
    if res is None:
        return ret
    _finish(ret, f"notrack ({res['backend']})")
    if res["boot"]:
        ret["comment"] += f". {res['boot']}"
    return ret
