"""What every network namespace shows: the host's own (from ``conntrack.status``)
and every other the core's ``namespaces.survey`` finds: named ones, container
runtimes' bind mounts and those only a process holds."""

import contextlib
import logging
import os

from saltext_conntrack import common, runtime

log = logging.getLogger(__name__)

SHOWN = ("name", "count", "usage", "drop")


def host_key(root):
    """The initial namespace's key: its inode, so a re-created namespace never inherits a baseline."""
    with contextlib.suppress(OSError):
        return f"netns:{os.stat(common.paths.join(root, 'proc/self/ns/net')).st_ino}"
    return "initial"


def namespaces(root, status, netlink_ok=False):
    """Every readable namespace's ``key``, ``name``, ``count``, ``drop`` and ``usage``
    (its count against the global max, percent), the host's first.

    With ``netlink_ok``, a namespace without a stat file (a kernel without the
    proc table) is read over ctnetlink from inside it, as ``conntrack.namespaces`` does.
    """
    maximum = status["max"]
    own = host_key(root)
    seen = [{"key": own, "name": "(host)", "count": status["count"], "drop": (status["stats"] or {}).get("drop")}]
    for row in runtime.namespaces.survey(root, status["flavour"], maximum, netlink_ok):
        key = f"netns:{row['inode']}"
        if key == own:
            continue
        if row["error"] is not None:
            log.debug("conntrack_remediate: cannot read netns %s: %s", runtime.namespaces.label(row), row["error"])
            continue
        seen.append({"key": key, "name": runtime.namespaces.label(row), "count": row["count"], "drop": row["drop"]})
    for item in seen:
        item["usage"] = round(100.0 * item["count"] / maximum, 2) if maximum else 0.0
    return seen


def shown(seen):
    """The namespaces as reported and fired: no keys."""
    return [{k: item[k] for k in SHOWN} for item in seen]
