"""A storm: several real minions report table_full within the same second.

A real master with the repo's reactor config and four real minions, each on a
fixture host of its own (a full table: count = max), its beacon following that
host's /var/log/kern.log. The test writes a burst of table-full lines into
every log in the same second and keeps writing for longer than the beacon's
min_interval, while it pings every minion through the master. Each minion must
be remediated exactly once (its own fixture max raised, one
``conntrack/remediated`` event), and the master must answer every ping.
"""

import os
import threading
import time

import pytest
import yaml
from saltfactories.utils import random_string

from tests.conftest import LOADER_DIRS, REPO
from tests.support.fixtures import build_root, stat_text

MINIONS = 4
FULL = 1000
LINE = "{stamp} storm kernel: nf_conntrack: nf_conntrack: table full, dropping packet\n"


@pytest.fixture(scope="module")
def storm_master(salt_factories, file_roots):
    with open(REPO / "salt" / "reactor" / "conntrack.conf", encoding="utf-8") as fh:
        reactor = yaml.safe_load(fh)["reactor"]
    factory = salt_factories.salt_master_daemon(
        random_string("storm-"),
        overrides={**LOADER_DIRS, "file_roots": file_roots, "reactor": reactor},
    )
    with factory.started():
        yield factory


@pytest.fixture(scope="module")
def storm_minions(storm_master, tmp_path_factory):
    hosts, factories = [], []
    for _ in range(MINIONS):
        root = build_root(tmp_path_factory.mktemp("stormhost"), count=FULL, maximum=FULL, buckets=FULL)
        os.makedirs(os.path.join(root, "etc", "sysctl.d"))
        os.makedirs(os.path.join(root, "var", "log"))
        open(os.path.join(root, "var", "log", "kern.log"), "w", encoding="ascii").close()
        factory = storm_master.salt_minion_daemon(
            random_string("storm-m-"),
            overrides={
                **LOADER_DIRS,
                "conntrack.root": root,
                "loop_interval": 1,
                "beacons": {
                    "conntrack": [
                        {"source": "/var/log/kern.log"},  # resolved against conntrack.root
                        {"min_interval": 3},
                        {"usage_warning": None},
                        {"usage_critical": None},
                        {"interval": 1},
                    ]
                },
            },
        )
        hosts.append(root)
        factories.append(factory)
    started = []
    try:
        for factory in factories:
            factory.start()
            started.append(factory)
        time.sleep(4)  # every beacon has run once: its cursor sits at the end of its empty log
        yield list(zip(factories, hosts))
    finally:
        for factory in started:
            factory.terminate()


def _burst(hosts, lines, drop):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    for root in hosts:
        with open(os.path.join(root, "var", "log", "kern.log"), "a", encoding="ascii") as fh:
            fh.write(LINE.format(stamp=stamp) * lines)
        with open(os.path.join(root, "proc", "net", "stat", "nf_conntrack"), "w", encoding="ascii") as fh:
            fh.write(stat_text("6.17", drop=drop, entries=FULL))


def _max_of(root):
    with open(os.path.join(root, "proc", "sys", "net", "netfilter", "nf_conntrack_max"), encoding="ascii") as fh:
        return int(fh.read())


def test_storm_each_minion_remediated_once_and_master_answers(storm_master, storm_minions, event_listener):
    ids = [factory.id for factory, _ in storm_minions]
    hosts = [root for _, root in storm_minions]
    cli = storm_master.salt_cli(timeout=30)
    pings, stop = [], threading.Event()

    def ping():
        while not stop.is_set():
            began = time.monotonic()
            ret = cli.run("test.ping", minion_tgt="storm-m-*")
            pings.append((time.monotonic() - began, ret.returncode, sorted((ret.data or {}).keys())))

    start = time.time()
    storm_began = time.monotonic()
    pinger = threading.Thread(target=ping, daemon=True)
    pinger.start()
    recovered = {}
    try:
        drop = 0
        deadline = storm_began + 40
        while time.monotonic() < deadline:
            drop += 500
            _burst(hosts, 20, drop)
            for root, minion in zip(hosts, ids):
                if minion not in recovered and _max_of(root) > FULL:
                    recovered[minion] = time.monotonic() - storm_began
            if len(recovered) == MINIONS and time.monotonic() - storm_began > max(recovered.values()) + 8:
                break  # the storm went on for longer than min_interval after the last recovery
            time.sleep(0.5)
    finally:
        stop.set()
        pinger.join(60)

    assert len(recovered) == MINIONS, f"not every minion recovered within 40 s: {recovered}"
    done = event_listener.get_events([(storm_master.id, "conntrack/remediated")], after_time=start)
    per_minion = {minion: sum(ev.data.get("id") == minion for ev in done) for minion in ids}
    assert per_minion == dict.fromkeys(ids, 1), per_minion
    full = event_listener.get_events(
        [(storm_master.id, f"salt/beacon/{minion}/conntrack/table_full") for minion in ids], after_time=start
    )
    assert {ev.data["id"] for ev in full} == set(ids)
    assert pings, "no ping ran during the storm"
    failed = [p for p in pings if p[1] != 0 or p[2] != sorted(ids)]
    assert not failed, f"the master did not answer every ping: {failed}"
    slowest = max(p[0] for p in pings)
    print(
        f"\nstorm: {MINIONS} minions, {len(full)} table_full events, time to the last recovery "
        f"{max(recovered.values()):.2f} s, {len(pings)} pings answered (slowest {slowest:.2f} s)"
    )
