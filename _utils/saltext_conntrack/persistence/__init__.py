"""The files that set conntrack at boot and on module load.

Plans, sysctl files, modprobe.d and udev, iptables-config, drift.
"""

from saltext_conntrack.persistence import drift, iptables_config, module_files, plans, sysctl_boot, sysctl_plan

__all__ = ["drift", "iptables_config", "module_files", "plans", "sysctl_boot", "sysctl_plan"]
