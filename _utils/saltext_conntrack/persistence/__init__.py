"""The files that set conntrack at boot and on module load.

Plans, sysctl files, modprobe.d and udev, iptables-config, drift, and the
tuning that keeps the runtime values and those files in step.
"""

from saltext_conntrack.persistence import drift, iptables_config, module_files, plans, sysctl_boot, sysctl_plan, tuning

__all__ = ["drift", "iptables_config", "module_files", "plans", "sysctl_boot", "sysctl_plan", "tuning"]
