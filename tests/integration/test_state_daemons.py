"""A real minion applies an SLS using every conntrack state: test=True first,
then twice for real, then test=True again.

The minion's ``conntrack.root`` is a fixture host (a modular kernel with the
conntrack chain loaded, RHEL iptables files, udev), and fake ``rmmod`` and
``nft`` come first on its PATH: nothing touches the real /etc or kernel.
"""

import os

import pytest
from saltfactories.utils import random_string

from tests.conftest import LOADER_DIRS
from tests.support.hosts import SAVED_RULES, fake_bin, host_root, modular_kernel, tree_snapshot

SLS = "tests.integration.files.conntrack_states"


@pytest.fixture
def fixture_minion(master, tmp_path):
    root = modular_kernel(host_root(tmp_path / "root", udev=True, rhel=True, maximum=65536, buckets=16384))
    os.makedirs(os.path.join(root, "etc/sysconfig"), exist_ok=True)
    with open(os.path.join(root, "etc/sysconfig/iptables"), "w", encoding="utf-8") as fh:
        fh.write(SAVED_RULES)
    bindir, log = fake_bin(tmp_path, root)
    factory = master.salt_minion_daemon(random_string("states-"), overrides={**LOADER_DIRS, "conntrack.root": root})
    factory.environ["PATH"] = f"{bindir}:{os.environ['PATH']}"
    with factory.started():
        yield factory, root, log


def apply(salt_cli, minion_id, **kwargs):
    ret = salt_cli.run("state.apply", SLS, minion_tgt=minion_id, _timeout=120, **kwargs)
    assert isinstance(ret.data, dict), ret
    return {value["__id__"]: value for value in ret.data.values()}


def test_every_state_through_a_real_minion(salt_cli, fixture_minion):
    minion, root, log = fixture_minion
    before = tree_snapshot(root)
    dry = apply(salt_cli, minion.id, test=True)
    assert len(dry) == 7, dry
    # Before stateless has run, the saved rules still need conntrack: the
    # unload honestly says it would refuse; everything else would change.
    gone = dry.pop("conntrack-modules-gone")
    assert gone["result"] is False and "need conntrack" in gone["comment"]
    for sid, res in dry.items():
        if sid == "xt_state-allowed":
            assert res["result"] is True and res["changes"] == {}
            continue
        assert res["result"] is None and res["changes"], (sid, res)
    assert tree_snapshot(root) == before, "test=True wrote something"

    first = apply(salt_cli, minion.id)
    for sid, res in first.items():
        assert res["result"] is True, (sid, res["comment"])
    for sid in ("conntrack-size", "/etc/sysconfig/iptables", "conntrack-modules-gone", "dns-untracked",
                "no-conntrack-helpers", "/etc/sysconfig/iptables-config"):  # fmt: skip
        assert first[sid]["changes"], sid
    assert first["xt_state-allowed"]["changes"] == {}  # never blacklisted
    # what the test run said is what the real run did
    for sid in ("conntrack-size", "/etc/sysconfig/iptables", "no-conntrack-helpers", "/etc/sysconfig/iptables-config"):
        assert dry[sid]["changes"] == first[sid]["changes"], sid

    with open(log, encoding="utf-8") as fh:
        removed = fh.read().split()
    # nf_conntrack after every consumer; after it only its own defrag dependencies (as modprobe -r)
    after = removed[removed.index("nf_conntrack") + 1 :]
    assert after and all(name.startswith("nf_defrag_") for name in after), removed
    with open(os.path.join(root, "etc/sysconfig/iptables-config"), encoding="utf-8") as fh:
        cfg = fh.read()
    assert 'IPTABLES_MODULES_UNLOAD="no"' in cfg and 'IPTABLES_RESTORE_WAIT="600"' in cfg
    assert 'IPTABLES_SYSCTL_LOAD_LIST=".nf_conntrack"' in cfg
    with open(os.path.join(root, "etc/nftables.d/conntrack-notrack.nft"), encoding="utf-8") as fh:
        assert "tcp sport 8443 notrack" in fh.read()

    # conntrack is gone now: tuned keeps its files and reports the values pending
    second = apply(salt_cli, minion.id)
    for sid, res in second.items():
        assert res["result"] is True and res["changes"] == {}, (sid, res)
    assert "pending" in second["conntrack-size"]["comment"]
    again = apply(salt_cli, minion.id, test=True)
    for sid, res in again.items():
        assert res["result"] is True and res["changes"] == {}, (sid, res)


def test_sys_doc_of_new_modules(salt_cli, fixture_minion):
    minion = fixture_minion[0]
    ret = salt_cli.run("sys.doc", "conntrack_files", "conntrack_fw", minion_tgt=minion.id)
    assert ret.returncode == 0, ret
    public = [name for name in ret.data if name.startswith(("conntrack_files.", "conntrack_fw."))]
    assert {"conntrack_files.iptables_config", "conntrack_fw.unload", "conntrack_fw.notrack"} <= set(public)
    for name in public:
        assert "CLI Example" in ret.data[name], name
