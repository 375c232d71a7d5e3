"""End to end on the real kernel: beacon -> master bus -> reactor (the repo's own
config) -> conntrack.remediate on the minion -> the table grows again.

A real salt-master whose reactor config is ``salt/reactor/conntrack.conf``, a
real salt-minion with the beacon turned on by ``conntrack.beacon`` (1 s
interval, kmsg), and a second minion playing a forger. The minion's
``conntrack.root`` reads the real /proc and /sys but keeps /etc in a temp dir.
"""

import json
import os
import socket
import time

import pytest
import salt.utils.event
import yaml
from saltfactories.utils import random_string

from tests.conftest import LOADER_DIRS, REPO
from tests.support.hostroot import build_host_root
from tests.support.kernel import PROC_NF, read_int, saved_globals, write_int

MAX = f"{PROC_NF}/nf_conntrack_max"


@pytest.fixture(scope="module")
def module_globals():
    """Outermost guard: late reactions after a test cannot leave the kernel changed."""
    with saved_globals() as saved:
        yield saved


@pytest.fixture(scope="module")
def reactor_master(salt_factories, module_globals, file_roots):
    with open(REPO / "salt" / "reactor" / "conntrack.conf", encoding="utf-8") as fh:
        reactor = yaml.safe_load(fh)["reactor"]
    factory = salt_factories.salt_master_daemon(
        random_string("reactor-"),
        overrides={
            **LOADER_DIRS,
            "file_roots": file_roots,
            "reactor": reactor,
        },
    )
    with factory.started():
        yield factory


@pytest.fixture(scope="module")
def host_root(tmp_path_factory):
    return build_host_root(tmp_path_factory.mktemp("hostroot"))


@pytest.fixture(scope="module")
def victim(reactor_master, host_root):
    factory = reactor_master.salt_minion_daemon(
        random_string("victim-"),
        overrides={
            **LOADER_DIRS,
            "conntrack.root": host_root,
            # Salt counts a beacon's interval in loop_interval units while calling
            # beacons once a second: saltfactories' 0.05 would make 1 s mean 20 s.
            "loop_interval": 1,
        },
    )
    with factory.started():
        cli = reactor_master.salt_cli(timeout=60)
        pillar = {"conntrack": {"beacon": {"interval": 1, "source": "kmsg", "min_interval": 5}}}
        ret = cli.run("state.apply", "conntrack.beacon", f"pillar={json.dumps(pillar)}", minion_tgt=factory.id)
        assert ret.returncode == 0, ret
        beacons = cli.run("beacons.list", "return_yaml=False", minion_tgt=factory.id)
        assert {"interval": 1} in beacons.data["conntrack"], beacons
        time.sleep(3)  # a first beacon run: its kmsg cursor starts at the end of the log
        yield factory


@pytest.fixture(scope="module")
def mallory(reactor_master):
    factory = reactor_master.salt_minion_daemon(random_string("mallory-"), overrides={**LOADER_DIRS})
    with factory.started():
        yield factory


@pytest.fixture
def fresh_victim(victim, host_root):
    """No remediation history: the rate limit and baselines start empty."""
    state = os.path.join(victim.config["cachedir"], "conntrack", "remediate.json")
    if os.path.exists(state):
        os.unlink(state)
    for rel in ("etc/sysctl.d/90-conntrack.conf", "etc/modprobe.d/conntrack.conf"):
        path = os.path.join(host_root, rel)
        if os.path.exists(path):
            os.unlink(path)
    return victim


def _events(event_listener, master, tag, after, sender=None):
    found = event_listener.get_events([(master.id, tag)], after_time=after)
    return [ev for ev in found if sender is None or ev.data.get("id") == sender]


def _wait(event_listener, master, tag, after, sender, timeout, predicate=lambda data: True):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for ev in _events(event_listener, master, tag, after, sender):
            if predicate(ev.data.get("data", ev.data)):
                return ev
        time.sleep(0.1)
    return None


def _fire_on_master_bus(master, tag, data):
    with salt.utils.event.get_master_event(master.config, master.config["sock_dir"], listen=False) as bus:
        bus.fire_event(data, tag)


def _overflow(netns, entries):
    """Fill the namespace's table: ``entries`` flows, then global max = entries."""
    assert netns.udp_flows(entries, first_port=20000) == entries
    write_int(MAX, entries)
    netns.overflow(3, first_port=21000)


def test_forged_event_naming_a_healthy_minion_changes_nothing(
    reactor_master, fresh_victim, mallory, host_root, event_listener, global_knobs
):
    start = time.time()
    before = read_int(MAX)
    # A tag whose "minion id" is a glob renders no reaction at all.
    _fire_on_master_bus(reactor_master, "salt/beacon/*/conntrack/table_full", {"id": "*"})
    # Mallory names the victim, with values meant to be used.
    cli = reactor_master.salt_cli(timeout=60)
    forged = {"id": fresh_victim.id, "max": 1, "buckets": 1, "status": {"count": 10, "max": 10, "usage": 100.0}}
    ret = cli.run(
        "event.send",
        f"salt/beacon/{fresh_victim.id}/conntrack/table_full",
        f"data={json.dumps(forged)}",
        minion_tgt=mallory.id,
    )
    assert ret.returncode == 0, ret
    refused = _wait(event_listener, reactor_master, "conntrack/remediation_refused", start, fresh_victim.id, 30)
    assert refused is not None, "the victim never looked at its own counters"
    assert refused.data["data"]["refused"] == "not_confirmed", refused.data
    time.sleep(2)
    assert read_int(MAX) == before
    assert not _events(event_listener, reactor_master, "conntrack/remediated", start)
    assert not _events(event_listener, reactor_master, "conntrack/remediation_refused", start, mallory.id)
    assert len(_events(event_listener, reactor_master, "conntrack/remediation_refused", start)) == 1
    assert not os.path.exists(os.path.join(host_root, "etc/sysctl.d/90-conntrack.conf"))


def test_table_full_is_remediated_end_to_end(
    reactor_master, fresh_victim, host_root, netns, event_listener, global_knobs
):
    entries = 200
    start = time.time()
    assert netns.udp_flows(entries, first_port=20000) == entries
    write_int(MAX, entries)
    first_drop = recovered = None
    port = 30000
    deadline = time.monotonic() + 45
    with netns.entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            while time.monotonic() < deadline:
                port += 1
                try:
                    sock.sendto(b"x", ("127.0.0.1", port))
                    # Accepted: recovery only once the global limit moved (not an early_drop).
                    if first_drop is not None and read_int(MAX) > entries:
                        recovered = time.monotonic()
                        break
                except PermissionError:
                    if first_drop is None:
                        first_drop = time.monotonic()
                time.sleep(0.05)
        finally:
            sock.close()
    assert first_drop is not None, "the table never filled"
    assert recovered is not None, "new flows were still dropped after 45 s"
    elapsed = recovered - first_drop
    print(f"\nconntrack recovery: first drop -> new flows tracked again in {elapsed:.2f} s")

    full = _wait(event_listener, reactor_master, f"salt/beacon/{fresh_victim.id}/conntrack/table_full", start, None, 10)
    assert full is not None, "no table_full event on the master's bus"
    assert any(ns["name"] == netns.name for ns in full.data["netns"]), full.data
    done = _wait(event_listener, reactor_master, "conntrack/remediated", start, fresh_victim.id, 10)
    assert done is not None, "no conntrack/remediated event"
    assert full.stamp <= done.stamp
    data = done.data["data"]
    assert data["old"]["max"] == entries
    new_max = data["new"]["max"]
    assert new_max > entries and read_int(MAX) == new_max
    assert any(netns.name in ev for ev in data["evidence"]), data
    with open(os.path.join(host_root, "etc/sysctl.d/90-conntrack.conf"), encoding="ascii") as fh:
        assert f"net.netfilter.nf_conntrack_max = {new_max}\n" in fh.read()
    assert netns.udp_flows(10, first_port=50000) == 10
    assert elapsed < 10, f"recovery took {elapsed:.2f} s (target < 10 s)"


def test_burst_of_forged_events_for_a_full_table_remediates_once(
    reactor_master, fresh_victim, netns, event_listener, global_knobs
):
    start = time.time()
    _overflow(netns, 100)
    tag = f"salt/beacon/{fresh_victim.id}/conntrack/table_full"
    for i in range(20):
        _fire_on_master_bus(reactor_master, tag, {"id": fresh_victim.id, "max": 10**9, "seq": i})
    done = _wait(event_listener, reactor_master, "conntrack/remediated", start, fresh_victim.id, 30)
    assert done is not None, "the full table was not remediated"
    # Values come from the host, not the events: max 10**9 would be above any ceiling.
    new_max = done.data["data"]["new"]["max"]
    assert new_max == read_int(MAX) and 100 < new_max < 10**9
    time.sleep(8)  # let every other reaction (and the beacon's own event) land
    assert len(_events(event_listener, reactor_master, "conntrack/remediated", start)) == 1
    refused = _events(event_listener, reactor_master, "conntrack/remediation_refused", start, fresh_victim.id)
    assert {ev.data["data"]["refused"] for ev in refused} <= {"rate_limited"}, [ev.data for ev in refused]
    print(f"\nburst: 20 forged events -> 1 remediation, {len(refused)} refused as rate limited")
    assert read_int(MAX) == new_max
