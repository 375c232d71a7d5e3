"""The live kernel: flavours and knobs, the status snapshot, sizing and the recommendation, the table walk,
ctnetlink and the source of each number, namespaces, the module chain, the sample history and its trend."""

from saltext_conntrack.runtime import (
    flush,
    history,
    kernel,
    knobs,
    module_chain,
    namespaces,
    netlink,
    netlink_walk,
    recommendation,
    sizing,
    snapshot,
    sources,
    table,
    trend,
)

__all__ = [
    "flush",
    "history",
    "kernel",
    "knobs",
    "module_chain",
    "namespaces",
    "netlink",
    "netlink_walk",
    "recommendation",
    "sizing",
    "snapshot",
    "sources",
    "table",
    "trend",
]
