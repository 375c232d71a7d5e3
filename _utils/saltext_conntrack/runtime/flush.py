"""``conntrack.flush``: delete exactly the entries that match a filter, over ctnetlink.

The seed's relief for a full table ("turn the firewall off, clear its
rules") removes everything; here only the entries that fill it go. Plan,
then apply: :func:`plan` checks every filter value before the kernel is
touched; :func:`apply` walks the table once (ctnetlink dump, bounded memory),
matches each entry's original direction, and deletes the matches one by one
by tuple, zone and id (``IPCTNL_MSG_CT_DELETE``), so an entry created since
with the same tuple is never the one deleted. ``test=True`` counts and
deletes nothing. It acts on the calling thread's network namespace.
"""

import ipaddress

from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.common import numbers
from saltext_conntrack.runtime import netlink, sources

PROTOCOLS = {name.decode(): number for number, name in netlink.PROTO_NAMES.items()}
TCP_STATES = {name.decode(): number for number, name in enumerate(netlink.TCP_STATES)}
FILTERS = ("proto", "src", "dst", "sport", "dport", "state", "unreplied", "mark", "zone")
BATCH = 512


def _proto(value):
    if isinstance(value, str) and value.lower() in PROTOCOLS:
        return PROTOCOLS[value.lower()]
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
        return value
    raise SaltInvocationError(f"proto must be one of {', '.join(sorted(PROTOCOLS))} or 0-255, got {value!r}"[:300])


def _network(value, name):
    if not isinstance(value, str) or len(value) > 64:
        raise SaltInvocationError(f"{name} must be an IP address or network (10.0.0.0/8), got {value!r}"[:300])
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError as err:
        raise SaltInvocationError(f"{name}: {err}") from err


def _state(value):
    if isinstance(value, str) and value.upper() in TCP_STATES:
        return TCP_STATES[value.upper()]
    raise SaltInvocationError(f"state must be a TCP state ({', '.join(TCP_STATES)}), got {value!r}"[:300])


def plan(filters, flush_all=False, test=False):
    """The checked filter: ``{"match": {...}, "shown": {...}, "test"}``; SaltInvocationError on any bad value.

    No filter at all is refused unless ``flush_all``: an empty filter matches every entry.
    """
    flush_all = numbers.boolean(flush_all, "all")
    test = numbers.boolean(test, "test")
    unknown = sorted(set(filters) - set(FILTERS))
    if unknown:
        raise SaltInvocationError(f"unknown filter(s) {', '.join(unknown)}; known: {', '.join(FILTERS)}")
    given = {key: value for key, value in filters.items() if value is not None}
    match = {}
    if "proto" in given:
        match["proto"] = _proto(given["proto"])
    for key in ("src", "dst"):
        if key in given:
            match[key] = _network(given[key], key)
    for key in ("sport", "dport"):
        if key in given:
            match[key] = numbers.integer(given[key], key, 0, 65535)
    if "state" in given:
        match["state"] = netlink.TCP_STATES[_state(given["state"])]
        if match.setdefault("proto", 6) != 6:
            raise SaltInvocationError("state is a TCP state: it needs proto=tcp (or no proto)")
    if "unreplied" in given:
        match["unreplied"] = numbers.boolean(given["unreplied"], "unreplied")
    if "mark" in given:
        match["mark"] = numbers.integer(given["mark"], "mark", 0, 2**32 - 1)
    if "zone" in given:
        match["zone"] = numbers.integer(given["zone"], "zone", 0, 65535)
    if not match and not flush_all:
        raise SaltInvocationError("no filter given: that would delete every entry; say all=True to mean it")
    shown = {key: str(value) if key in ("src", "dst") else value for key, value in match.items()}
    if "state" in shown:
        shown["state"] = shown["state"].decode()
    if "proto" in shown:
        shown["proto"] = netlink.PROTO_NAMES.get(shown["proto"], str(shown["proto"]).encode()).decode()
    return {"match": match, "shown": shown, "test": test, "all": flush_all}


def matches(entry, match):
    """Whether a dump :class:`netlink.Entry` fits every part of ``match`` (original direction)."""
    for key, wanted in match.items():
        if key in ("src", "dst"):
            raw = getattr(entry, key)
            if not raw or ipaddress.ip_address(raw.decode()) not in wanted:
                return False
        elif key == "unreplied":
            if entry.unreplied != wanted:
                return False
        elif getattr(entry, key) != wanted:
            return False
    return True


def apply(host, checked, netns=None):
    """Walk the table once and delete what ``checked`` (from :func:`plan`) matches; the counts.

    ``matched`` entries fitted the filter; ``deleted`` were removed;
    ``gone`` had expired between the walk and the delete.
    """
    if not sources.netlink_allowed(host):
        raise CommandExecutionError(
            f"conntrack.flush deletes from the live kernel's table, not from conntrack.root {host.root}: "
            "set conntrack.netlink: true where that root's proc/sys is the live one"
        )
    result = {"filter": checked["shown"], "matched": 0, "deleted": 0, "gone": 0, "test": checked["test"]}
    try:
        walker = netlink.open_socket(netns)
        deleter = None if checked["test"] else netlink.open_socket(netns)
    except OSError as err:
        raise CommandExecutionError(f"cannot open ctnetlink: {err}") from err
    seq = 1000
    try:
        for batch in netlink.dump(walker):
            chosen = [entry for entry in batch if matches(entry, checked["match"])]
            result["matched"] += len(chosen)
            if deleter is not None and chosen:
                deleted, gone = netlink.delete(deleter, chosen, seq)
                result["deleted"] += deleted
                result["gone"] += gone
                seq += len(chosen)
    except OSError as err:
        raise CommandExecutionError(f"conntrack.flush stopped: {err} (after {result['deleted']} deleted)") from err
    finally:
        walker.close()
        if deleter is not None:
            deleter.close()
    return result
