"""The sysctl keys and values the persistence core writes (``persistence.sysctl_plan``).

Moved from tests/unit/test_files_validation.py.
"""

import pytest
from salt.exceptions import SaltInvocationError

from saltext_conntrack.persistence import sysctl_plan


@pytest.mark.parametrize(
    "key, ok",
    [
        ("net.netfilter.nf_conntrack_max", True),
        ("net.nf_conntrack_max", True),
        ("net.ipv4.netfilter.ip_conntrack_tcp_timeout_established", True),
        ("net.ipv4.ip_forward", False),
        ("net.netfilter.nf_conntrack_max/../../ip_forward", False),
        ("net.netfilter.nf_log.2", False),
        ("kernel.core_pattern", False),
    ],
)
def test_sysctl_keys_stay_in_conntrack(key, ok):
    if ok:
        assert sysctl_plan.valid_key(key) == key
    else:
        with pytest.raises(SaltInvocationError, match="not a conntrack sysctl key"):
            sysctl_plan.valid_key(key)


def test_timeout_keys_for_both_flavours():
    assert sysctl_plan.timeout_key("tcp_established") == "net.netfilter.nf_conntrack_tcp_timeout_established"
    assert sysctl_plan.timeout_key("udp") == "net.netfilter.nf_conntrack_udp_timeout"
    assert sysctl_plan.timeout_key("udp_stream", "ip_conntrack") == "net.ipv4.netfilter.ip_conntrack_udp_timeout_stream"


@pytest.mark.parametrize(
    "key, value, ok",
    [
        ("net.netfilter.nf_conntrack_max", 0, False),
        ("net.netfilter.nf_conntrack_max", 2**31 - 1, True),
        ("net.nf_conntrack_max", 1, True),
        ("net.netfilter.nf_conntrack_expect_max", 0, False),
        ("net.netfilter.nf_conntrack_buckets", (2**31 - 1) // 8, True),
        ("net.netfilter.nf_conntrack_buckets", (2**31 - 1) // 8 + 1, False),
        ("net.netfilter.nf_conntrack_tcp_timeout_established", 0, False),
        ("net.netfilter.nf_conntrack_tcp_timeout_established", (2**31 - 1) // 1000, True),
        ("net.netfilter.nf_conntrack_tcp_timeout_established", (2**31 - 1) // 1000 + 1, False),
        ("net.ipv4.netfilter.ip_conntrack_udp_timeout_stream", 2**31 - 1, False),
        ("net.netfilter.nf_conntrack_tcp_loose", 0, True),
        ("net.netfilter.nf_conntrack_tcp_loose", 2, False),
        ("net.netfilter.nf_conntrack_count", 5, False),  # read-only: no bounds known, refused
        ("net.netfilter.nf_conntrack_whatever", 1, False),
    ],
)
def test_persisted_sysctl_values_bounded_per_key(key, value, ok):
    if ok:
        assert sysctl_plan.valid_value(key, value) == value
    else:
        with pytest.raises(SaltInvocationError):
            sysctl_plan.valid_value(key, value)
