"""conntrack_files editors shared by conntrack.tuned and the auto-remediation."""

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
