"""What the iptables-config file may hold (``persistence.iptables_config``).

Moved from tests/unit/test_files_validation.py.
"""

import pytest
from salt.exceptions import SaltInvocationError

from saltext_conntrack.persistence import iptables_config, plans


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("IPTABLES_MODULES_UNLOAD", False, "no"),
        ("IPTABLES_MODULES_UNLOAD", "yes", "yes"),
        ("IP6TABLES_SAVE_COUNTER", True, "yes"),
        ("IPTABLES_MODULES", ["nf_nat_ftp", "nf_conntrack_ftp"], "nf_nat_ftp nf_conntrack_ftp"),
        ("IPTABLES_MODULES", "", ""),
        ("IPTABLES_SYSCTL_LOAD_LIST", ".nf_conntrack .ip_conntrack", ".nf_conntrack .ip_conntrack"),
        ("IPTABLES_RESTORE_WAIT_INTERVAL", 1000000, "1000000"),
    ],
)
def test_iptables_values_accepted(key, value, expected):
    assert iptables_config.valid_value(key, value) == expected


@pytest.mark.parametrize(
    "key, value",
    [
        ("IPTABLES_MODULES_UNLOAD", "Yes"),
        ("IPTABLES_MODULES_UNLOAD", 1),
        ("IPTABLES_MODULES", "nf_nat\nreboot"),
        ("IPTABLES_MODULES", "nf_nat;reboot"),
        ("IPTABLES_SYSCTL_LOAD_LIST", "${IFS}"),
        ("IPTABLES_RESTORE_WAIT", -1),
        ("IPTABLES_RESTORE_WAIT", "0x10"),
        ("IPTABLES_RESTORE_WAIT", True),
        ("iptables_modules", "x"),
        ("PATH", "/tmp"),
    ],
)
def test_iptables_values_refused(key, value):
    with pytest.raises(SaltInvocationError):
        iptables_config.valid_value(key, value)


@pytest.mark.parametrize("value", ["-r --force", "-r", "--force nf_nat", "-", "-a"])
def test_module_names_never_start_with_a_dash(value):
    """The init script runs ``modprobe $mod``: a leading '-' would be an option."""
    with pytest.raises(SaltInvocationError, match="only module names"):
        iptables_config.valid_value("IPTABLES_MODULES", value)
    with pytest.raises(SaltInvocationError, match="not a kernel module name"):
        plans.modules(value.split()[0])


@pytest.mark.parametrize(
    "key, value",
    [
        ("IPTABLES_MODULES", " ".join(["nf_nat_ftp"] * 100000)),  # 1 MB
        ("IPTABLES_MODULES", ["nf_nat"] * 65),
        ("IPTABLES_SYSCTL_LOAD_LIST", "." + "a" * 1100),
        ("IPTABLES_MODULES", "nf_nat\x00"),
        ("IPTABLES_RESTORE_WAIT", "1_000"),
        ("IPTABLES_RESTORE_WAIT", "\uff11\uff10"),
        ("IPTABLES_RESTORE_WAIT", 10**9),
        ("IPTABLES_RESTORE_WAIT", 5.0),
    ],
)
def test_iptables_values_are_bounded(key, value):
    with pytest.raises(SaltInvocationError) as err:
        iptables_config.valid_value(key, value)
    assert len(str(err.value)) < 700
