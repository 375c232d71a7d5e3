"""Drift causes, from runtime, boot and the tuned record."""

from saltext_conntrack.persistence import drift

MAX = "net.netfilter.nf_conntrack_max"
EST = "net.netfilter.nf_conntrack_tcp_timeout_established"


def boot(value, file="/etc/sysctl.d/90-conntrack.conf"):
    return {"value": str(value), "file": file}


def test_reload_back_to_default_is_named():
    found = drift.compare({EST: 432000, MAX: 524288}, {EST: boot(3600), MAX: boot(524288)}, {EST: 3600, MAX: 524288})
    assert [f["key"] for f in found] == [EST]
    assert found[0]["differs_from"] == ["tuned", "boot"] and "reloaded" in found[0]["cause"]


def test_kube_proxy_values_are_named():
    found = drift.compare({EST: 86400, MAX: 131072}, {}, {EST: 3600, MAX: 524288}, cpus=2)
    assert [("kube-proxy" in f["cause"]) for f in found] == [True, True]


def test_runtime_only_change_without_record_names_the_boot_file():
    found = drift.compare({MAX: 1000}, {MAX: boot(524288)}, {})
    assert found == [
        {
            "key": MAX,
            "runtime": 1000,
            "boot": "524288",
            "boot_file": "/etc/sysctl.d/90-conntrack.conf",
            "tuned": None,
            "differs_from": ["boot"],
            "cause": "set at runtime; boot will set 524288 (/etc/sysctl.d/90-conntrack.conf) instead",
        }
    ]


def test_nothing_when_all_agree_and_record_round_trips(tmp_path):
    assert drift.compare({MAX: 5}, {MAX: boot(5)}, {MAX: 5}) == []
    drift.record(str(tmp_path), {MAX: 5}, now=100.0)
    assert drift.recorded(str(tmp_path)) == ({MAX: 5}, 100.0)
    assert drift.recorded(str(tmp_path / "none")) == ({}, None)


BUCKETS = "net.netfilter.nf_conntrack_buckets"


def test_values_back_at_the_kernel_default_without_a_record_name_the_reload():
    # Debian 6.1 in the vm tier: values persisted in sysctl.d and applied, then a
    # firewall restart reloaded nf_conntrack; max = buckets, established 432000.
    found = drift.compare(
        {MAX: 65536, BUCKETS: 65536, EST: 432000},
        {MAX: boot(54321, "/etc/sysctl.d/99-x.conf"), EST: boot(3600, "/etc/sysctl.d/99-x.conf")},
        {},
    )
    assert [f["key"] for f in found] == [MAX, EST]
    for diff in found:
        assert diff["cause"].startswith("the kernel default: the module was reloaded"), diff
        assert diff["cause"].endswith("boot sets " + diff["boot"] + " (/etc/sysctl.d/99-x.conf)")


def test_max_eight_times_buckets_is_the_default_with_a_hashsize_option():
    # hashsize=16384 in modprobe.d and no sysctl applied after the load: max 131072.
    assert drift.is_kernel_default(MAX, 131072, 16384)
    assert drift.is_kernel_default(MAX, 16384, 16384)
    assert not drift.is_kernel_default(MAX, 49152, 16384)
    assert not drift.is_kernel_default(MAX, 131072, None)
    assert not drift.is_kernel_default(BUCKETS, 16384, 16384)
    found = drift.compare({MAX: 131072, BUCKETS: 16384}, {MAX: boot(49152)}, {MAX: 49152})
    assert "reloaded" in found[0]["cause"] and found[0]["differs_from"] == ["tuned", "boot"]


def test_max_set_by_hand_is_not_called_a_default():
    found = drift.compare({MAX: 70000, BUCKETS: 65536}, {MAX: boot(54321)}, {})
    assert found[0]["cause"].startswith("set at runtime")


import pytest  # noqa: E402


@pytest.mark.parametrize(
    "text",
    ['{"set_at": 1e300, "values": {}}', '{"set_at": 1, "values": {"net.x": "9" }}', '{"set_at": 1, "values": []}',
     '{"set_at": true, "values": {}}', "{", '{"set_at": 1, "values": {"net.x": 1e400}}'],
)  # fmt: skip
def test_a_corrupt_record_is_set_aside_and_reads_as_none(tmp_path, text):
    """Class: own state. Before: time.gmtime(1e300) raised OverflowError out of conntrack.drift."""
    (tmp_path / "conntrack").mkdir()
    (tmp_path / "conntrack" / "tuned.json").write_text(text)
    assert drift.recorded(str(tmp_path)) == ({}, None)
    assert [p.name.startswith("tuned.json.corrupt-") for p in (tmp_path / "conntrack").iterdir()] == [True]
