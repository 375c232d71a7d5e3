"""conntrack.notrack's preflight on the real kernel: two namespaces joined by a veth pair, a UDP
DNS responder in one, the other a client whose input policy is drop with only ``ct state
established,related accept``. Exempting udp/53 there would drop every reply; the state refuses
naming the rule, and with ``accept_untracked`` the replies keep coming and the table stays put."""

import socket
import subprocess
import sys
import uuid

import pytest

from tests.support.kernel import Netns

SERVER_IP, CLIENT_IP = "10.218.53.2", "10.218.53.1"
STATEFUL = (
    "table inet filter {\n"
    "  chain input {\n"
    "    type filter hook input priority 0; policy drop;\n"
    '    iif "lo" accept\n'
    "    ct state established,related accept\n"
    "  }\n"
    "}\n"
)
# The shape ufw and firewalld give a ruleset: every accept in a chain the base chain jumps to.
JUMPED = (
    "table inet filter {\n"
    "  chain input {\n"
    "    type filter hook input priority 0; policy drop;\n"
    "    jump before-input\n"
    "  }\n"
    "  chain before-input {\n"
    '    iif "lo" accept\n'
    "    ct state established,related accept\n"
    "  }\n"
    "}\n"
)
RESPONDER = f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("{SERVER_IP}", 53))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(512)
    # a DNS answer header: the query's id, QR set, the rest of the query echoed
    s.sendto(data[:2] + bytes([data[2] | 0x80]) + data[3:], peer)
"""
QUERY = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"


@pytest.fixture
def pair():
    """(client, server) namespaces joined by a veth pair, a DNS responder in the server; all removed."""
    client, server = Netns("ctc").create(), Netns("cts").create()
    responder = None
    try:
        tag = uuid.uuid4().hex[:6]
        client.ip("-n", client.name, "link", "add", f"c{tag}", "type", "veth", "peer", "name", f"s{tag}",
                  "netns", server.name)  # fmt: skip
        for ns, dev, addr in ((client, f"c{tag}", CLIENT_IP), (server, f"s{tag}", SERVER_IP)):
            ns.ip("-n", ns.name, "addr", "add", f"{addr}/30", "dev", dev)
            ns.ip("-n", ns.name, "link", "set", dev, "up")
        responder = subprocess.Popen(
            ["ip", "netns", "exec", server.name, sys.executable, "-c", RESPONDER],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert responder.stdout.readline().strip() == "ready"
        yield client, server
    finally:
        if responder is not None:
            responder.kill()  # by its own pid
            responder.wait(timeout=10)
        client.delete()
        server.delete()


def queries(ns, count, timeout=1.0):
    """How many of ``count`` queries (each from a new source port) are answered."""
    answered = 0
    with ns.entered():
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.settimeout(timeout)
            try:
                sock.sendto(QUERY, (SERVER_IP, 53))
                data = sock.recv(512)
                answered += data[:2] == QUERY[:2] and bool(data[2] & 0x80)
            except TimeoutError:
                pass
            finally:
                sock.close()
    return answered


@pytest.mark.parametrize("ruleset", [STATEFUL, JUMPED], ids=["base-chain", "jumped-to-chain"])
def test_notrack_is_refused_where_replies_would_be_dropped_and_accept_untracked_keeps_them(
    pair, real_root, make_loaders, ruleset
):
    client, _ = pair
    client.run("nft", "-f", "-", input=ruleset)
    assert queries(client, 100) == 100  # tracked: the established accept lets every reply in
    states = make_loaders(real_root).states
    flows = [{"proto": "udp", "port": 53}]
    with client.entered():
        dry = states.conntrack.notrack(name="dns", flows=flows, backend="nft", test=True)
        ret = states.conntrack.notrack(name="dns", flows=flows, backend="nft")
    for one in (dry, ret):
        assert one.result is False, one.comment
        assert "refused" in one.comment and "inet filter chain input" in one.comment, one.comment
        assert "policy drop" in one.comment and "ct state established,related accept" in one.comment
        assert "accept_untracked" in one.comment
    assert "conntrack_notrack" not in client.run("nft", "list", "tables").stdout  # nothing loaded

    before = client.count()
    with client.entered():
        ok = states.conntrack.notrack(name="dns", flows=flows, backend="nft", accept_untracked=True)
    assert ok.result is True, ok.comment
    assert any("untracked accept" in key for key in ok.changes), ok.changes
    assert queries(client, 100) == 100
    assert client.count() <= before  # untracked: no new entry for any of the 100 lookups
    with client.entered():
        again = states.conntrack.notrack(name="dns", flows=flows, backend="nft", accept_untracked=True)
    assert again.result is True and again.changes == {}, again.changes  # the accepts are seen, not added twice


def test_the_premise_untracked_replies_die_on_the_established_accept_alone(pair):
    """What the preflight guards against, measured: the exemption loaded without the accept."""
    from saltext_conntrack.firewall import notrack

    client, _ = pair
    client.run("nft", "-f", "-", input=STATEFUL)
    client.run("nft", "-f", "-", input=notrack.script([{"proto": "udp", "port": 53}]))
    assert queries(client, 5, timeout=0.3) == 0


def test_an_invalid_drop_does_not_drop_symmetric_untracked_flows(pair, real_root, make_loaders):
    """``ct state invalid drop`` never matches an untracked packet (its state is ``untracked``),
    and the exemption covers both directions: the preflight lets it pass, and DNS keeps working."""
    client, _ = pair
    client.run("nft", "-f", "-", input=STATEFUL.replace("policy drop", "policy accept").replace(
        '    iif "lo" accept\n', "    ct state invalid drop\n"))  # fmt: skip
    with client.entered():
        ret = make_loaders(real_root).states.conntrack.notrack(
            name="dns", flows=[{"proto": "udp", "port": 53}], backend="nft"
        )
    assert ret.result is True, ret.comment
    before = client.count()
    assert queries(client, 100) == 100
    assert client.count() <= before
