"""The live kernel: flavours and knobs, the status snapshot, sizing and the recommendation, the table walk,
namespaces, the module chain, the sample history and its trend."""

from saltext_conntrack.runtime import (
    history,
    kernel,
    knobs,
    module_chain,
    namespaces,
    recommendation,
    sizing,
    snapshot,
    table,
    trend,
)

__all__ = [
    "history",
    "kernel",
    "knobs",
    "module_chain",
    "namespaces",
    "recommendation",
    "sizing",
    "snapshot",
    "table",
    "trend",
]
