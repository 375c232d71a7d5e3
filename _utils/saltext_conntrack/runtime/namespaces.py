"""Every network namespace on the host, and its own conntrack numbers.

Each namespace has its own count (checked against the one global max), its
own stat file and its own drops; a container's namespace is often reachable
only through a process (``/proc/PID/ns/net``), not under ``/run/netns``. So
namespaces are found three ways, one entry per inode:

- bind mounts: ``/run/netns`` (``ip netns``, OpenStack routers, CNI's ``cni-*``)
  and ``/run/docker/netns`` (Docker sandboxes);
- every process's ``/proc/PID/ns/net``;
- the initial namespace: kernel threads (``kthreadd``, pid 2) always live in
  it, while pid 1 may be a container's init.

Numbers come from ``/proc/PID/net/stat/nf_conntrack`` where a process lives in
the namespace (its ``entries`` column is the namespace's count, no table
walk), else from a short-lived thread that enters the bind mounts with
``setns`` (which moves only that thread), one after another, and reads
``/proc/thread-self`` in each.
"""

import ctypes
import os
import re
import threading

from saltext_conntrack.common import files, paths
from saltext_conntrack.runtime import kernel, netlink

CLONE_NEWNET = 0x40000000
BIND_DIRS = ("run/netns", "run/docker/netns")
_NS_LINK = re.compile(r"net:\[(\d+)\]")
# Container runtimes as they name a container in its cgroup path.
_RUNTIMES = (
    ("kubernetes", re.compile(r"kubepods.*?(?:cri-containerd-|crio-|docker-)?([0-9a-f]{64})")),
    ("docker", re.compile(r"docker[-/]([0-9a-f]{64})")),
    ("podman", re.compile(r"libpod-(?:conmon-)?([0-9a-f]{64})")),
    ("containerd", re.compile(r"cri-containerd-([0-9a-f]{64})")),
    ("cri-o", re.compile(r"crio-([0-9a-f]{64})")),
    ("lxc", re.compile(r"lxc(?:\.payload)?[./]([A-Za-z0-9_.-]+)")),
)


def _read(path, limit=65536):
    return files.read_kernel(path, limit).decode("utf-8", "replace")


def _inode_of_link(path):
    try:
        match = _NS_LINK.fullmatch(os.readlink(path))
    except OSError:
        return None
    return int(match.group(1)) if match else None


def owner_of(root, pid):
    """``{pid, process, runtime, container}`` for a process (runtime/container None outside one)."""
    owner = {"pid": pid, "process": None, "runtime": None, "container": None}
    try:
        owner["process"] = _read(paths.join(root, f"proc/{pid}/comm")).strip() or None
        cgroup = _read(paths.join(root, f"proc/{pid}/cgroup"))
    except OSError:
        return owner
    for runtime, pattern in _RUNTIMES:
        match = pattern.search(cgroup)
        if match:
            owner["runtime"], owner["container"] = runtime, match.group(1)
            break
    return owner


def discover(root):
    """``{inode: {"inode", "names", "pid", "initial"}}`` for every namespace found.

    ``names`` are the bind-mount paths (``/run/netns/blue``); ``pid`` is the
    lowest process id living in it (None for a namespace held only by a mount).
    """
    found = {}

    def entry(inode):
        return found.setdefault(inode, {"inode": inode, "names": [], "pid": None, "initial": False})

    for rel in BIND_DIRS:
        directory = paths.join(root, rel)
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            try:
                inode = os.stat(os.path.join(directory, name)).st_ino
            except OSError:
                continue
            entry(inode)["names"].append(f"/{rel}/{name}")
    try:
        pids = sorted(int(p) for p in os.listdir(paths.join(root, "proc")) if p.isdigit())
    except OSError:
        pids = []
    for pid in pids:
        inode = _inode_of_link(paths.join(root, f"proc/{pid}/ns/net"))
        if inode is not None and entry(inode)["pid"] is None:
            found[inode]["pid"] = pid
    initial = initial_inode(root)
    if initial in found:
        found[initial]["initial"] = True
    return found


def self_inode(root):
    """The inode of the namespace this thread is in, or None."""
    try:
        return os.stat(paths.join(root, "proc/thread-self/ns/net")).st_ino
    except OSError:
        return None


def initial_inode(root):
    """The inode of the initial network namespace, or None when it cannot be told."""
    for pid in (2, 1):
        try:
            if pid == 2 and _read(paths.join(root, "proc/2/comm")).strip() != "kthreadd":
                continue
        except OSError:
            continue
        inode = _inode_of_link(paths.join(root, f"proc/{pid}/ns/net"))
        if inode is not None:
            return inode
    return None


def _through_setns(root, bind_paths, flavour):
    """``{bind_path: (text, error)}``: the stat files of the namespaces mounted at ``bind_paths``.

    One short-lived thread enters each in turn and reads ``/proc/thread-self``:
    a thread for each namespace cost about 0.35 ms apiece, which a beacon's
    event run (3 ms) could not pay on a host with a few dozen namespaces.
    """
    results = {}
    rel = kernel.FLAVOURS[flavour]["stat"].replace("proc/", "proc/thread-self/", 1)

    def worker():
        libc = ctypes.CDLL(None, use_errno=True)
        for path in bind_paths:
            try:
                fd = os.open(path, os.O_RDONLY)
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, os.strerror(err))
                finally:
                    os.close(fd)
                # Read only after this namespace was entered: a failed setns leaves the thread in the last one.
                results[path] = (_read(paths.join(root, rel), 1 << 20), None)
            except OSError as err:
                results[path] = (None, f"{type(err).__name__}: {err}")

    if bind_paths:
        thread = threading.Thread(target=worker, name="conntrack-netns", daemon=True)
        thread.start()
        thread.join(10)
    done = dict(results)
    return {path: done.get(path, (None, "timed out entering the namespace")) for path in bind_paths}


def _netlink_counters(root, ns, error):
    """``(stats, error)`` over a ctnetlink socket opened inside the namespace (no stat file there)."""
    entry = ns["names"][0] if ns["names"] else f"/proc/{ns['pid']}/ns/net"
    try:
        sock = netlink.open_socket(paths.join(root, entry))
        try:
            stats = {"entries": netlink.global_stats(sock)["count"], **netlink.cpu_stats(sock)}
            return {**stats, "source": "netlink"}, None
        finally:
            sock.close()
    except OSError as err:
        return None, f"{error}; netlink: {type(err).__name__}: {err}"


def counters(root, ns, flavour, netlink_ok=False, entered=None):
    """``(stats, error)``: the namespace's summed stat counters (``entries`` is its count).

    The stat file where the kernel has one; with ``netlink_ok``, ctnetlink
    from inside the namespace where it has none. ``entered``: what
    ``_through_setns`` already read, by bind path.
    """
    stats, error = _stat_counters(root, ns, flavour, entered or {})
    if stats is None and netlink_ok and (ns["names"] or ns["pid"] is not None):
        return _netlink_counters(root, ns, error)
    return stats, error


def _stat_counters(root, ns, flavour, entered):
    if ns["pid"] is not None:
        rel = kernel.FLAVOURS[flavour]["stat"].replace("proc/", f"proc/{ns['pid']}/", 1)
        try:
            return kernel.parse_stat(_read(paths.join(root, rel), 1 << 20)), None
        except (OSError, ValueError) as err:
            if not ns["names"]:
                return None, f"{type(err).__name__}: {err}"
    if not ns["names"]:
        return None, "no process and no bind mount to enter"
    path = paths.join(root, ns["names"][0])
    text, error = entered[path] if path in entered else _through_setns(root, [path], flavour)[path]
    if text is None:
        return None, error
    try:
        return kernel.parse_stat(text), None
    except ValueError as err:
        return None, f"ValueError: {err}"


def label(row):
    """A short name for a namespace row: its bind mount's name, its container or its process."""
    if row["names"]:
        return os.path.basename(row["names"][0])
    owner = row.get("owner") or {}
    if owner.get("container"):
        return f"{owner['runtime']}:{owner['container'][:12]}"
    if owner.get("pid") is not None:
        return f"pid {owner['pid']} ({owner.get('process') or '?'})"
    return f"inode {row['inode']}"


def describe(root, inodes, known=None):
    """``{inode: {"name", "owner"}}`` for the namespaces among ``inodes`` that exist (no counters read).

    ``known``: a ``discover`` answer to reuse.
    """
    wanted = {ino for ino in inodes if ino is not None}
    if not wanted:
        return {}
    found = {}
    for inode, ns in (discover(root) if known is None else known).items():
        if inode in wanted:
            row = {**ns, "owner": owner_of(root, ns["pid"]) if ns["pid"] is not None else None}
            found[inode] = {"name": label(row), "owner": row["owner"]}
    return found


def _owner(root, pid, owners):
    if pid is None:
        return None
    if pid not in owners:
        owners[pid] = owner_of(root, pid)
    return dict(owners[pid])


def survey(root, flavour, maximum, netlink_ok=False, found=None, owners=None):
    """Every namespace with its count, usage of ``maximum``, drops and owner; worst usage first.

    ``source`` says what answered for each (``procfs``, ``netlink``, None with ``error``);
    ``found``: a ``discover`` answer to reuse (the walk of /proc is most of the cost);
    ``owners``: a dict of ``owner_of`` answers by pid to reuse and fill, kept as long as ``found``.
    """
    rows = []
    found = discover(root) if found is None else found
    owners = {} if owners is None else owners
    held_by_mounts = [paths.join(root, ns["names"][0]) for ns in found.values() if ns["pid"] is None and ns["names"]]
    entered = _through_setns(root, held_by_mounts, flavour)
    for ns in found.values():
        stats, error = counters(root, ns, flavour, netlink_ok, entered)
        row = {
            "inode": ns["inode"],
            "initial": ns["initial"],
            "names": ns["names"],
            "owner": _owner(root, ns["pid"], owners),
            "count": None,
            "usage": None,
            "drop": None,
            "early_drop": None,
            "insert_failed": None,
            "error": error,
            "source": None if stats is None else stats.pop("source", "procfs"),
        }
        if stats is not None:
            count = stats.get("entries", 0)
            row.update(
                count=count,
                usage=round(100.0 * count / maximum, 2) if maximum else 0.0,
                drop=stats.get("drop"),
                early_drop=stats.get("early_drop"),
                insert_failed=stats.get("insert_failed"),
            )
        rows.append(row)
    rows.sort(key=lambda r: (r["usage"] is None, -(r["usage"] or 0), r["inode"]))
    return rows
