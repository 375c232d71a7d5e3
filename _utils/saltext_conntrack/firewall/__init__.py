"""The rules that need connection tracking: the iptables-save reader, dependents,
notrack and stateless plans, unloading with rmmod."""

from saltext_conntrack.firewall import dependents, iptables_save, notrack, preflight, rmmod, stateless

__all__ = ["dependents", "iptables_save", "notrack", "preflight", "rmmod", "stateless"]
