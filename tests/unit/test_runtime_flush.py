"""conntrack.flush's filter: every value checked before the kernel is touched, matched exactly."""

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.runtime import flush, netlink, snapshot
from tests.unit.test_runtime_netlink import ct_message


def entry(*args, **kwargs):
    data = ct_message(*args, **kwargs)
    return netlink.parse_entry(data, 20, len(data), data[16])


def test_plan_shows_the_filter_as_understood():
    checked = flush.plan({"proto": "UDP", "dport": "53", "unreplied": True, "dst": "10.0.0.0/8"})
    assert checked["shown"] == {"proto": "udp", "dport": 53, "unreplied": True, "dst": "10.0.0.0/8"}
    assert checked["test"] is False
    assert flush.plan({"state": "time_wait"})["shown"] == {"state": "TIME_WAIT", "proto": "tcp"}


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({}, "no filter given"),
        ({"proto": "tcpp"}, "proto must be one of"),
        ({"dport": 70000}, "dport must be a whole number"),
        ({"src": "10.0.0.300"}, "src:"),
        ({"state": "OPEN"}, "state must be a TCP state"),
        ({"state": "ESTABLISHED", "proto": "udp"}, "needs proto=tcp"),
        ({"unreplied": "yes"}, "unreplied must be true or false"),
        ({"mark": -1}, "mark must be"),
        ({"zone": 65536}, "zone must be"),
        ({"port": 53}, "unknown filter"),
    ],
)
def test_bad_filters_are_refused(filters, message):
    with pytest.raises(SaltInvocationError, match=message):
        flush.plan(filters)


def test_all_means_every_entry_and_must_be_said():
    assert flush.plan({}, flush_all=True)["match"] == {}
    with pytest.raises(SaltInvocationError, match="all must be true or false"):
        flush.plan({}, flush_all="yes")


def test_matches_every_part_of_the_original_direction():
    dns = entry("10.0.0.1", "10.0.0.53")
    answered = entry("10.0.0.1", "10.0.0.53", status=netlink.IPS_SEEN_REPLY)
    web = entry("10.0.0.1", "10.0.0.2", proto=6, dport=443, status=0x6, tcp_state=3)
    match = flush.plan({"proto": "udp", "dport": 53, "unreplied": True})["match"]
    assert [flush.matches(e, match) for e in (dns, answered, web)] == [True, False, False]
    net = flush.plan({"dst": "10.0.0.0/30", "state": "ESTABLISHED"})["match"]
    assert [flush.matches(e, net) for e in (dns, web)] == [False, True]
    assert flush.matches(entry("::1", "::1"), flush.plan({"src": "10.0.0.0/8"})["match"]) is False


def test_a_fixture_root_is_never_flushed(tmp_path):
    host = snapshot.Host(str(tmp_path), "6.17.0-1-amd64", 64)
    with pytest.raises(CommandExecutionError, match="live kernel"):
        flush.apply(host, flush.plan({}, flush_all=True))
