"""The conntrack formula through a real master and minion, on a fixture host.

The minion's ``conntrack.root`` is a fixture tree (tests/support/hosts.py) and
its grains say RHEL, so map.jinja's RedHat layer is what renders: nothing
touches the real /etc or kernel.
"""

import json
import os

import pytest
from saltfactories.utils import random_string

from tests.conftest import LOADER_DIRS
from tests.support.hosts import host_root, tree_snapshot

PILLAR = {
    "conntrack": {
        "max": 131072,
        "buckets": 16384,
        "timeouts": {"tcp_established": 3600, "udp": 30},
        "remediate": {"interval": 900, "cap": 524288},
    }
}


@pytest.fixture(scope="module")
def formula_minion(master, tmp_path_factory):
    root = host_root(tmp_path_factory.mktemp("formula") / "root", rhel=True, maximum=65536, buckets=16384)
    factory = master.salt_minion_daemon(
        random_string("formula-"),
        overrides={
            **LOADER_DIRS,
            "conntrack.root": root,
            "grains": {"os_family": "RedHat", "osfinger": "Rocky Linux-9"},
        },
    )
    with factory.started():
        yield factory, root


def apply(salt_cli, minion_id, sls, **kwargs):
    ret = salt_cli.run("state.apply", sls, f"pillar={json.dumps(PILLAR)}", minion_tgt=minion_id, _timeout=120, **kwargs)
    assert isinstance(ret.data, dict), ret
    return {value["__id__"]: value for value in ret.data.values()}


def show(salt_cli, minion_id, sls):
    ret = salt_cli.run("state.show_sls", sls, f"pillar={json.dumps(PILLAR)}", minion_tgt=minion_id, _timeout=120)
    assert isinstance(ret.data, dict), ret
    return ret.data


def test_apply_twice_second_run_has_no_changes(salt_cli, formula_minion):
    minion, root = formula_minion
    before = tree_snapshot(root)
    dry = apply(salt_cli, minion.id, "conntrack", test=True)
    assert dry["conntrack-tuned"]["result"] is None and dry["conntrack-tuned"]["changes"], dry
    assert tree_snapshot(root) == before, "test=True wrote something"

    first = apply(salt_cli, minion.id, "conntrack")
    res = first["conntrack-tuned"]
    assert res["result"] is True, res
    assert res["changes"]["max"] == {"old": 65536, "new": 131072}
    with open(os.path.join(root, "proc/sys/net/netfilter/nf_conntrack_max"), encoding="ascii") as fh:
        assert int(fh.read()) == 131072
    with open(os.path.join(root, "etc/sysctl.d/90-conntrack.conf"), encoding="ascii") as fh:
        assert "net.netfilter.nf_conntrack_max = 131072" in fh.read()

    second = apply(salt_cli, minion.id, "conntrack")
    assert second["conntrack-tuned"]["result"] is True and second["conntrack-tuned"]["changes"] == {}, second
    after = tree_snapshot(root)
    again = apply(salt_cli, minion.id, "conntrack", test=True)
    assert again["conntrack-tuned"]["result"] is True and again["conntrack-tuned"]["changes"] == {}, again
    assert tree_snapshot(root) == after


def test_rhel_iptables_config_from_the_map(salt_cli, formula_minion):
    minion, root = formula_minion
    first = apply(salt_cli, minion.id, "conntrack,conntrack.iptables_config")
    res = first["conntrack-iptables-config-/etc/sysconfig/iptables-config"]
    assert res["result"] is True and res["changes"], res
    with open(os.path.join(root, "etc/sysconfig/iptables-config"), encoding="utf-8") as fh:
        text = fh.read()
    assert 'IPTABLES_MODULES_UNLOAD="no"' in text and 'IPTABLES_SYSCTL_LOAD_LIST=".nf_conntrack"' in text
    second = apply(salt_cli, minion.id, "conntrack,conntrack.iptables_config")
    assert all(r["changes"] == {} and r["result"] is True for r in second.values()), second


@pytest.fixture(scope="module")
def centos5_minion(master, tmp_path_factory):
    root = host_root(
        tmp_path_factory.mktemp("centos5") / "root",
        era="centos5",
        sysctl_d=False,
        rhel=True,
        maximum=65536,
        buckets=8192,
    )
    factory = master.salt_minion_daemon(
        random_string("centos5-"),
        overrides={**LOADER_DIRS, "conntrack.root": root, "grains": {"os_family": "RedHat", "osfinger": "CentOS-5"}},
    )
    with factory.started():
        yield factory, root


def test_centos5_highstate_does_not_flap(salt_cli, centos5_minion):
    """conntrack (tuned) and conntrack.iptables_config together on a CentOS 5
    host: the legacy token, one modprobe file, and no changes on a second run."""
    minion, root = centos5_minion
    first = apply(salt_cli, minion.id, "conntrack,conntrack.iptables_config")
    assert all(r["result"] is True for r in first.values()), first
    assert first["conntrack-tuned"]["changes"], first
    with open(os.path.join(root, "etc/sysconfig/iptables-config"), encoding="utf-8") as fh:
        text = fh.read()
    assert 'IPTABLES_MODULES_UNLOAD="no"' in text
    assert 'IPTABLES_SYSCTL_LOAD_LIST=".ip_conntrack"' in text and "nf_conntrack" not in text.replace(
        '#IPTABLES_SYSCTL_LOAD_LIST=".nf_conntrack"', ""
    ), text
    with open(os.path.join(root, "etc/sysctl.conf"), encoding="ascii") as fh:
        assert "net.ipv4.netfilter.ip_conntrack_max = 131072" in fh.read()
    with open(os.path.join(root, "etc/modprobe.d/conntrack.conf"), encoding="ascii") as fh:
        assert "options ip_conntrack hashsize=16384" in fh.read()
    assert not os.path.exists(os.path.join(root, "etc/modprobe.conf"))

    before = tree_snapshot(root)
    second = apply(salt_cli, minion.id, "conntrack,conntrack.iptables_config")
    assert all(r["changes"] == {} and r["result"] is True for r in second.values()), second
    assert tree_snapshot(root) == before

    # Remediation on this host persists hashsize to the same modprobe file.
    rem = show(salt_cli, minion.id, "conntrack.remediate")
    call = rem["conntrack-remediate"]["module"]
    args = next(
        arg["conntrack_remediate.remediate"]
        for arg in call
        if isinstance(arg, dict) and "conntrack_remediate.remediate" in arg
    )
    assert "modprobe_file" not in {k for arg in args for k in arg}


def test_rendered_disable_order_and_remediate_args(salt_cli, formula_minion):
    minion, _ = formula_minion
    dis = show(salt_cli, minion.id, "conntrack.disable")
    stateless = [sid for sid in dis if sid.startswith("conntrack-stateless-")]
    assert stateless == ["conntrack-stateless-/etc/sysconfig/iptables", "conntrack-stateless-/etc/sysconfig/ip6tables"]
    # Never forced by default: a DROP chain keeps its ESTABLISHED accept.
    assert {"force": False} in dis[stateless[0]]["conntrack"]
    unload = dis["conntrack-unloaded"]["conntrack"]
    assert {"require": [{"conntrack": sid} for sid in stateless]} in unload
    black = dis["conntrack-disable-blacklisted"]["conntrack"]
    assert {"require": [{"conntrack": "conntrack-unloaded"}]} in black
    names = next(arg["names"] for arg in black if isinstance(arg, dict) and "names" in arg)
    assert "nf_conntrack_ipv4" in names  # the RedHat layer's list

    rem = show(salt_cli, minion.id, "conntrack.remediate")
    call = rem["conntrack-remediate"]["module"]
    args = next(
        arg["conntrack_remediate.remediate"]
        for arg in call
        if isinstance(arg, dict) and "conntrack_remediate.remediate" in arg
    )
    merged = {k: v for arg in args for k, v in arg.items()}
    assert merged["interval"] == 900 and merged["cap"] == 524288 and merged["threshold"] == 90
    assert merged["target"] == 131072  # pillar conntrack:max is the target size
