"""The beacon through the real Salt loader, on fixture trees.

The beacons loader is Salt's own (``salt.loader.beacons``) over the minion's
execution modules, so ``__salt__["conntrack.status"]`` is the real module
reading the fixture root; the last test runs Salt's ``Beacon.process``, which
adds the tags the master sees.
"""

import importlib
import os
import sys

import pytest

from tests.conftest import REPO
from tests.support.beacons import SyncRouteCore
from tests.support.fixtures import build_root
from tests.support.loaderfile import load

FULL = "2026-11-25T11:00:{sec:02d}.000000+00:00 vm kernel: nf_conntrack: nf_conntrack: table full in netns {ns}, dropping packet\n"


@pytest.fixture
def host(tmp_path):
    """A 6.17 host at 10% usage whose syslog is var/log/kern.log, with one named netns."""
    root = build_root(tmp_path / "root", "6.17", count=10, maximum=100, drop=7)
    os.makedirs(f"{root}/var/log")
    os.makedirs(f"{root}/run/netns")
    with open(f"{root}/var/log/kern.log", "w", encoding="utf-8") as fh:
        fh.write("Nov 25 10:00:00 vm kernel: booting\n")
    open(f"{root}/run/netns/blue", "w").close()  # a bind-mount point in real life: its inode names it
    return root


def append(root, text):
    with open(f"{root}/var/log/kern.log", "a", encoding="utf-8") as fh:
        fh.write(text)


def test_table_full_through_the_loader(make_loaders, host):
    beacons = make_loaders(host).beacons
    config = [{"source": "auto"}, {"min_interval": 0}]
    assert beacons["conntrack.validate"](config) == (True, "Valid beacon configuration")
    assert beacons["conntrack.beacon"](config) == []  # auto: no kmsg, no journal under this root
    blue = os.stat(f"{host}/run/netns/blue").st_ino
    append(
        host, FULL.format(sec=1, ns=blue) * 3 + "Nov 25 11:00:06 vm kernel: net_ratelimit: 55 callbacks suppressed\n"
    )
    append(host, FULL.format(sec=9, ns=4026530001))
    (event,) = beacons["conntrack.beacon"](config)
    assert event["tag"] == "table_full"
    assert event["source"] == f"{host}/var/log/kern.log"
    assert (event["matched"], event["suppressed"], event["total"]) == (4, 55, 59)
    assert sorted(event["netns"], key=lambda n: n["inode"]) == sorted(
        [
            {"inode": 4026530001, "name": None, "owner": None, "matched": 1},
            {"inode": blue, "name": "blue", "owner": None, "matched": 3},
        ],
        key=lambda n: n["inode"],
    )
    assert (event["first"], event["last"]) == ("2026-11-25T11:00:01+00:00", "2026-11-25T11:00:09+00:00")
    # The snapshot is the execution module's reading of the fixture root.
    assert event["status"] == {
        "count": 10,
        "max": 100,
        "usage": 10.0,
        "drop": 7,
        "source": {"count": "procfs", "max": "procfs", "stats": "procfs"},
    }


def test_usage_and_drops_from_the_real_status(make_loaders, host):
    beacons = make_loaders(host).beacons
    config = [{"source": "auto"}, {"status_interval": 0}, {"min_interval": 0}]
    assert beacons["conntrack.beacon"](config) == []
    build_root(host, "6.17", count=93, maximum=100, drop=7)
    (event,) = beacons["conntrack.beacon"](config)
    assert (event["tag"], event["level"], event["threshold"], event["usage"]) == ("usage_high", "critical", 90, 93.0)
    build_root(host, "6.17", count=94, maximum=100, drop=1007)
    (event,) = beacons["conntrack.beacon"](config)
    assert (event["tag"], event["delta"], event["drop"]) == ("drops", 1000, 1007)
    build_root(host, "6.17", count=40, maximum=100, drop=1007)
    (event,) = beacons["conntrack.beacon"](config)
    assert (event["tag"], event["previous"], event["usage"]) == ("usage_ok", "critical", 40.0)


def test_legacy_host_and_messages_file(make_loaders, tmp_path):
    root = build_root(tmp_path / "c5", "centos5", count=65536, maximum=65536, drop=3)
    os.makedirs(f"{root}/var/log")
    messages = f"{root}/var/log/messages"
    with open(messages, "w", encoding="utf-8") as fh:
        fh.write("")
    beacons = make_loaders(root).beacons
    config = [{"source": "auto"}]
    assert [e["tag"] for e in beacons["conntrack.beacon"](config)] == ["usage_high"]
    with open(messages, "a", encoding="utf-8") as fh:
        fh.write("Mar  3 04:12:01 web1 kernel: ip_conntrack: table full, dropping packet.\n" * 2)
        fh.write("Mar  3 04:12:06 web1 kernel: printk: 443 messages suppressed.\n")
    (event,) = beacons["conntrack.beacon"](config)
    assert (event["tag"], event["matched"], event["suppressed"], event["source"]) == ("table_full", 2, 443, messages)
    assert event["netns"] == [{"inode": None, "name": None, "owner": None, "matched": 2}]
    assert event["status"] == {
        "count": 65536,
        "max": 65536,
        "usage": 100.0,
        "drop": 3,
        "source": {"count": "procfs", "max": "procfs", "stats": "procfs"},
    }


def test_restart_keeps_the_cursor_in_the_cachedir(make_loaders, host):
    loaders = make_loaders(host)
    config = [{"source": "auto"}, {"min_interval": 0}]
    loaders.beacons["conntrack.beacon"](config)
    append(host, FULL.format(sec=1, ns=1))
    assert loaders.beacons["conntrack.beacon"](config)[0]["matched"] == 1
    loaders.restart()
    append(host, FULL.format(sec=2, ns=2) * 2)  # while the minion is down
    (event,) = loaders.beacons["conntrack.beacon"](config)
    assert event["netns"] == [{"inode": 2, "name": None, "owner": None, "matched": 2}]
    assert os.path.exists(os.path.join(loaders.opts["cachedir"], "conntrack", "beacon-conntrack.json"))


def test_bad_config_through_the_loader(make_loaders, host):
    beacons = make_loaders(host).beacons
    ok, why = beacons["conntrack.validate"]([{"source": "kmsg"}, {"usage_warning": 95}, {"usage_critical": 80}])
    assert ok is False and "usage_warning (95) must not be above usage_critical (80)" in why


def test_salt_beacon_processing_adds_the_tags(make_loaders, host):
    """Salt's own Beacon.process: validate, the interval key, and the tag the master sees."""
    import salt.beacons

    loaders = make_loaders(host)
    opts = {**loaders.opts, "id": "web1", "loop_interval": 1}
    config = {"conntrack": [{"source": "auto"}, {"min_interval": 0}, {"interval": 1}]}
    beacon = salt.beacons.Beacon(opts, loaders.modules)
    beacon.process(config, loaders.grains)  # Salt skips the first run of an interval
    beacon.process(config, loaders.grains)
    append(host, FULL.format(sec=1, ns=5))
    (fired,) = beacon.process(config, loaders.grains)
    assert fired["tag"] == "salt/beacon/web1/conntrack/table_full"
    assert fired["data"]["matched"] == 1 and fired["data"]["id"] == "web1"
    broken = {"conntrack": [{"source": "auto"}, {"min_interval": "soon"}]}
    assert beacon.process(broken, loaders.grains) == []  # refused by validate, logged, not run


def test_sync_route_core_comes_through_the_execution_module(make_loaders, host, monkeypatch):
    """saltutil.sync_all: the core is not importable when the beacon loads, but the
    execution module's loader imports it, and __virtual__ takes it from sys.modules."""
    SyncRouteCore(REPO / "_utils").install(monkeypatch)
    with pytest.raises(ImportError):
        importlib.import_module("saltext_conntrack")  # what the beacon's top-level import meets
    beacons = make_loaders(host).beacons
    config = [{"source": "auto"}, {"min_interval": 0}]
    assert beacons["conntrack.beacon"](config) == []
    append(host, FULL.format(sec=1, ns=7))
    (event,) = beacons["conntrack.beacon"](config)
    assert (event["tag"], event["matched"]) == ("table_full", 1)
    core = sys.modules["saltext_conntrack"]
    assert os.path.realpath(core.__file__) == os.path.realpath(REPO / "_utils/saltext_conntrack/__init__.py")
    assert str(REPO / "_utils") not in sys.path  # the loader put it there only while loading


def test_sync_route_without_the_execution_module_says_why(monkeypatch, tmp_path):
    SyncRouteCore(REPO / "_utils").install(monkeypatch)
    beacon = load("_beacons/conntrack.py", name="sync_route_beacon")
    assert beacon.logwatch is None
    beacon.__salt__ = {}
    beacon.__opts__ = {"cachedir": str(tmp_path)}
    ok, why = beacon.__virtual__()
    assert ok is False and "saltext_conntrack cannot be imported" in why and "saltutil.sync_all" in why
