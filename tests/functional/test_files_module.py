"""conntrack_files editors shared by conntrack.tuned and the auto-remediation."""

import os

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support.fixtures import build_root


def test_module_options_keeps_other_options(make_loaders, tmp_path):
    root = build_root(tmp_path)
    conf = tmp_path / "etc/modprobe.d/conntrack.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("# mine\noptions nf_conntrack hashsize=512 acct=1\nblacklist nf_nat_ftp\n")
    files = make_loaders(root).modules.conntrack_files
    ret = files.module_options("nf_conntrack", {"hashsize": 4096})
    assert ret["written"] is True
    assert conf.read_text() == "# mine\noptions nf_conntrack hashsize=4096 acct=1\nblacklist nf_nat_ftp\n"
    assert files.module_options("nf_conntrack", {"hashsize": 4096})["changes"] == {}
    # The remediation never lowers: a smaller hashsize leaves the line alone.
    assert files.module_options("nf_conntrack", {"hashsize": 1024}, lower=False)["written"] is False
    assert files.module_options("nf_conntrack", {"hashsize": 1024})["written"] is True
    assert "hashsize=1024 acct=1" in conf.read_text()


def test_persist_sysctl_lower_false_keeps_a_bigger_value(make_loaders, tmp_path):
    root = build_root(tmp_path)
    conf = tmp_path / "etc/sysctl.d/90-conntrack.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("net.ipv4.ip_forward = 1\nnet.netfilter.nf_conntrack_max = 999999\n")
    files = make_loaders(root).modules.conntrack_files
    key = "net.netfilter.nf_conntrack_max"
    ret = files.persist_sysctl({key: 500000}, path="/etc/sysctl.d/90-conntrack.conf", lower=False)
    assert ret["changes"] == {} and ret["written"] is False
    ret = files.persist_sysctl({key: 2000000}, path="/etc/sysctl.d/90-conntrack.conf", lower=False)
    assert ret["changes"] == {key: {"old": "999999", "new": "2000000"}}
    assert conf.read_text() == "net.ipv4.ip_forward = 1\nnet.netfilter.nf_conntrack_max = 2000000\n"


@pytest.mark.parametrize(
    "call, path",
    [
        ("persist_sysctl", "/etc/passwd"),
        ("persist_sysctl", "/etc/sysctl.d/sub/x.conf"),
        ("persist_sysctl", "/etc/sysctl.d/x.sh"),
        ("module_options", "/etc/modprobe.d/conntrack"),
        ("blacklist", "/etc/profile.d/x.conf"),
        ("udev_rule", "/etc/udev/rules.d/90-x.conf"),
        ("iptables_config", "/etc/profile"),
        ("stateless", "/etc/shadow"),
        ("notrack_persist", "/etc/cron.d/conntrack"),
        ("notrack_persist", "/etc/nftables.d/x.sh"),
    ],
)
def test_each_function_writes_only_its_own_files(make_loaders, tmp_path, call, path):
    root = build_root(tmp_path)
    modules = make_loaders(root).modules
    files = modules.conntrack_fw if call in ("stateless", "notrack_persist") else modules.conntrack_files
    args = {
        "persist_sysctl": ({"net.netfilter.nf_conntrack_max": 4096},),
        "module_options": ("nf_conntrack", {"hashsize": 4096}),
        "blacklist": ("nf_conntrack",),
        "udev_rule": (),
        "iptables_config": ({"IPTABLES_MODULES_UNLOAD": "no"},),
        "stateless": (),
        "notrack_persist": ([{"proto": "udp", "port": 53}],),
    }[call]
    with pytest.raises(SaltInvocationError, match="file must be"):
        getattr(files, call)(*args, path=path)
    assert not os.path.exists(os.path.join(root, path.lstrip("/")))


def test_allowed_paths_accepted(make_loaders, tmp_path):
    root = build_root(tmp_path)
    files = make_loaders(root).modules.conntrack_files
    assert files.persist_sysctl({"net.netfilter.nf_conntrack_max": 4096}, path="/etc/sysctl.conf")["written"]
    assert files.module_options("nf_conntrack", {"hashsize": 4096}, path="/etc/modprobe.conf")["written"]
    fw = make_loaders(root).modules.conntrack_fw
    assert fw.notrack_persist([{"proto": "udp", "port": 53}], backend="iptables",
                              path="/etc/iptables/conntrack-notrack.rules")["written"]  # fmt: skip


def test_symlinked_file_written_through_and_kept_a_symlink(make_loaders, tmp_path):
    root = build_root(tmp_path)
    real = tmp_path / "etc/conntrack/sysctl.conf"
    real.parent.mkdir(parents=True)
    real.write_text("vm.swappiness = 10\n")
    (tmp_path / "etc/sysctl.d").mkdir(parents=True, exist_ok=True)
    link = tmp_path / "etc/sysctl.d/90-conntrack.conf"
    link.symlink_to("../conntrack/sysctl.conf")
    files = make_loaders(root).modules.conntrack_files
    files.persist_sysctl({"net.netfilter.nf_conntrack_max": 4096}, path="/etc/sysctl.d/90-conntrack.conf")
    assert link.is_symlink()
    assert real.read_text() == "vm.swappiness = 10\nnet.netfilter.nf_conntrack_max = 4096\n"


def test_symlink_out_of_root_is_not_followed(make_loaders, tmp_path):
    root = tmp_path / "root"
    build_root(root)
    outside = tmp_path / "outside.conf"
    outside.write_text("# not ours\n")
    (root / "etc/sysctl.d").mkdir(parents=True, exist_ok=True)
    link = root / "etc/sysctl.d/90-conntrack.conf"
    link.symlink_to(outside)
    files = make_loaders(root).modules.conntrack_files
    with pytest.raises(CommandExecutionError, match="outside"):
        files.persist_sysctl({"net.netfilter.nf_conntrack_max": 4096}, path="/etc/sysctl.d/90-conntrack.conf")
    assert outside.read_text() == "# not ours\n" and link.is_symlink()


def test_persist_sysctl_dash_key_is_the_same_key(make_loaders, tmp_path):
    """`-key = value` is systemd's ignore-errors form of the key: edited in place, never duplicated."""
    root = build_root(tmp_path)
    conf = tmp_path / "etc/sysctl.d/90-conntrack.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("# mine\n-net.netfilter.nf_conntrack_max = 1\nvm.swappiness=10\n")
    files = make_loaders(root).modules.conntrack_files
    key = "net.netfilter.nf_conntrack_max"
    ret = files.persist_sysctl({key: 262144}, path="/etc/sysctl.d/90-conntrack.conf")
    assert ret["changes"] == {key: {"old": "1", "new": "262144"}}
    assert conf.read_text() == "# mine\n-net.netfilter.nf_conntrack_max = 262144\nvm.swappiness=10\n"
    assert files.persist_sysctl({key: 262144}, path="/etc/sysctl.d/90-conntrack.conf")["changes"] == {}


def test_sysctl_overrides_lists_later_files_only(make_loaders, tmp_path):
    root = build_root(tmp_path)
    etc = tmp_path / "etc"
    (etc / "sysctl.d").mkdir(parents=True)
    (etc / "sysctl.conf").write_text("net.nf_conntrack_max = 1000\n# net.netfilter.nf_conntrack_max = 5\n")
    (etc / "sysctl.d/99-sysctl.conf").symlink_to("../sysctl.conf")
    (etc / "sysctl.d/10-early.conf").write_text("net.netfilter.nf_conntrack_max = 7\n")
    (etc / "sysctl.d/90-conntrack.conf").write_text("net.netfilter.nf_conntrack_max = 262144\n")
    (etc / "sysctl.d/95-later.conf").write_text("-net.netfilter.nf_conntrack_max = 2000\n")
    (etc / "sysctl.d/99-salt.conf").write_text("net.netfilter.nf_conntrack_max = 262144\n")
    (etc / "sysctl.d/zz-last.conf").write_text("net/netfilter/nf_conntrack_udp_timeout = 10\n")
    (etc / "sysctl.d/zz-last.conf.dpkg-old").write_text("net.netfilter.nf_conntrack_max = 3\n")
    files = make_loaders(root).modules.conntrack_files
    values = {"net.netfilter.nf_conntrack_max": 262144, "net.netfilter.nf_conntrack_udp_timeout": 30}
    assert files.sysctl_overrides(values, path="/etc/sysctl.d/90-conntrack.conf") == [
        {"file": "/etc/sysctl.d/95-later.conf", "key": "net.netfilter.nf_conntrack_max", "value": "2000"},
        {"file": "/etc/sysctl.d/99-sysctl.conf", "key": "net.nf_conntrack_max", "value": "1000"},
        {"file": "/etc/sysctl.d/zz-last.conf", "key": "net.netfilter.nf_conntrack_udp_timeout", "value": "10"},
    ]
    # /etc/sysctl.conf is applied as 99-sysctl.conf: only zz-last.conf comes after it
    assert files.sysctl_overrides(values, path="/etc/sysctl.conf") == [
        {"file": "/etc/sysctl.d/zz-last.conf", "key": "net.netfilter.nf_conntrack_udp_timeout", "value": "10"},
    ]
    # without the link, /etc/sysctl.conf comes last of all
    (etc / "sysctl.d/99-sysctl.conf").unlink()
    assert files.sysctl_overrides(values, path="/etc/sysctl.conf") == []
    assert files.sysctl_overrides(values, path="/etc/sysctl.d/zz-last.conf") == [
        {"file": "/etc/sysctl.conf", "key": "net.nf_conntrack_max", "value": "1000"},
    ]
