"""The live kernel: flavours and knobs, sizing, the table walk, namespaces, the module chain, the sample history."""

from saltext_conntrack.runtime import history, kernel, module_chain, namespaces, sizing, table

__all__ = ["history", "kernel", "module_chain", "namespaces", "sizing", "table"]
