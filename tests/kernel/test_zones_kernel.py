"""Zones and IPv6 in the breakdown and the findings, on the real kernel: nft ``ct zone set`` and
IPv6 flows on loopback."""

import socket


def _flows(netns, family, host, ports):
    with netns.entered(), socket.socket(family, socket.SOCK_DGRAM) as sock:
        for port in ports:
            sock.sendto(b"x", (host, port))


def test_summary_breaks_entries_down_by_zone_and_family(netns, make_loaders):
    # Before conntrack (priority raw, -300): flows to udp 30000-30099 go to zone 5.
    netns.run(
        "nft",
        "add table inet cttzone; "
        "add chain inet cttzone out { type filter hook output priority -300; }; "
        "add rule inet cttzone out udp dport 30000-30099 ct zone set 5",
    )
    _flows(netns, socket.AF_INET, "127.0.0.1", range(20000, 20050))
    _flows(netns, socket.AF_INET, "127.0.0.1", range(30000, 30100))
    _flows(netns, socket.AF_INET6, "::1", range(21000, 21020))
    mods = make_loaders("/").modules
    with netns.entered():
        out = mods.conntrack.summary(timeout=0)
        found = mods.conntrack.diagnose(timeout=0)
    assert out["total"] == 170 and out["complete"] is True, out
    assert out["by_family"] == {"ipv4": 150, "ipv6": 20}, out
    assert out["by_zone"] == {"5": 100, "0": 70}, out
    assert found["summary"]["by_zone"] == out["by_zone"] and found["walk"]["complete"] is True
    zone = {f["id"]: f for f in found["findings"]}["top_zone"]
    assert zone["evidence"] == {**zone["evidence"], "zone": 5, "entries": 100} and "-w 5" in zone["fix"]
