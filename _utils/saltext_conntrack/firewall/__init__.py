"""The rules that need connection tracking: the iptables-save reader, dependents, notrack and stateless plans."""

from saltext_conntrack.firewall import dependents, iptables_save, notrack, stateless

__all__ = ["dependents", "iptables_save", "notrack", "stateless"]
