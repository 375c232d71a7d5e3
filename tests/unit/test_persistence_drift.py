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
