"""The table's size arithmetic (``runtime.sizing``): ceilings, RAM, bucket ratios.

Moved from tests/unit/test_module_parsing.py.
"""

import pytest
from salt.exceptions import SaltInvocationError

from saltext_conntrack.runtime import sizing


@pytest.mark.parametrize(
    "ram,arch,expected",
    [(64 * 2**30, 64, 2097152), (64 * 2**30, 32, 4194304), (2**30, 64, 32768), (512 * 2**20, 32, 32768)],
)
def test_classic_ceiling(ram, arch, expected):
    assert sizing.ceiling(ram, arch) == expected


@pytest.mark.parametrize(
    "text,expected", [("64G", 64 * 2**30), ("512MiB", 512 * 2**20), ("1T", 2**40), (4 * 2**30, 4 * 2**30)]
)
def test_parse_ram(text, expected):
    assert sizing.parse_ram(text) == expected


@pytest.mark.parametrize("bad", ["64X", "-5G", "", True, "1 G B", 1000, 64.0, "６４G", "1_000G", None])
def test_parse_ram_refuses(bad):
    with pytest.raises(SaltInvocationError):
        sizing.parse_ram(bad)


@pytest.mark.parametrize(
    "release,flavour,ratio,words",
    [
        ("6.18.0-1-amd64", "nf_conntrack", 1, "5.15 and later"),
        ("5.15.0-91-generic", "nf_conntrack", 1, "5.15 and later"),
        ("5.14.21", "nf_conntrack", 4, "before 5.15"),
        ("4.19.0-26-amd64", "nf_conntrack", 4, "before 5.15"),
        ("2.6.32-754.el6.x86_64", "nf_conntrack", 4, "before 5.15"),
        ("2.6.18-419.el5", "ip_conntrack", 8, "2.6-era ip_conntrack"),
        ("", "nf_conntrack", 8, "unreadable"),
    ],
)
def test_kernel_bucket_ratio(release, flavour, ratio, words):
    got, why = sizing.kernel_ratio(release, flavour)
    assert got == ratio and words in why


def test_buckets_never_fewer_than_the_host_has():
    assert sizing.buckets_for(786432, 8, "r")[0] == 98304
    buckets, rule = sizing.buckets_for(786432, 8, "r", current=262144)
    assert buckets == 262144 and "never fewer" in rule
    assert sizing.buckets_for(786432, 1, "r", current=262144) == (786432, "r")
