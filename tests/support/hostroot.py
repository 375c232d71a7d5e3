"""A ``conntrack.root`` that reads the real kernel but writes /etc into a temp dir.

``proc``, ``sys``, ``lib``, ``run`` and ``dev`` are symlinks to the host's own, so
status, namespaces and runtime writes are real; ``etc`` is a plain directory,
so persisted files land under the test's tree, never in the host's /etc.
"""

import os


def build_host_root(path):
    path = str(path)
    os.makedirs(os.path.join(path, "etc", "sysctl.d"), exist_ok=True)
    os.makedirs(os.path.join(path, "etc", "modprobe.d"), exist_ok=True)
    for name in ("proc", "sys", "lib", "run", "dev"):
        link = os.path.join(path, name)
        if not os.path.lexists(link):
            os.symlink(f"/{name}", link)
    return path


def build_procfs_less_root(path):
    """A host root as Ubuntu's kernels have it: no ``proc/net/stat/nf_conntrack``, no ``proc/net/nf_conntrack``.

    ``proc`` is a directory of links to the host's own entries, except
    ``net``, ``self``, ``thread-self`` and the process directories (each of
    which would lead to the real ``net`` again): ``proc/sys`` is this
    kernel's, so count, max and the timeouts are real, and the stat file and
    the table exist only over ctnetlink.
    """
    path = build_host_root(path)
    proc = os.path.join(path, "proc")
    os.unlink(proc)
    os.makedirs(os.path.join(proc, "net"))
    for name in os.listdir("/proc"):
        if name.isdigit() or name in ("net", "self", "thread-self"):
            continue
        os.symlink(f"/proc/{name}", os.path.join(proc, name))
    return path
