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
