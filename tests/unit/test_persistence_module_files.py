"""saltext_conntrack.persistence.module_files: modprobe.d options and blacklists,
and the udev rule that re-applies the sysctls when conntrack loads."""

import os

import pytest
from salt.exceptions import SaltInvocationError

from saltext_conntrack.persistence import module_files, plans
from tests.support.fixtures import _write

HEADER = plans.HEADER


@pytest.fixture
def root(tmp_path):
    top = tmp_path / "root"
    (top / "etc/modprobe.d").mkdir(parents=True)
    return os.path.realpath(top)


def read(root, rel):
    with open(os.path.join(root, rel.lstrip("/")), encoding="utf-8") as fh:
        return fh.read()


def test_options_plan_new_file(root):
    one = module_files.options_plan(root, "nf_conntrack", {"hashsize": 65536})
    line = "options nf_conntrack hashsize=65536"
    assert one == {
        "path": "/etc/modprobe.d/conntrack.conf",
        "real": os.path.join(root, "etc/modprobe.d/conntrack.conf"),
        "old": "",
        "new": HEADER + line + "\n",
        "exists": False,
        "mode": 0o644,
        "changes": {line: {"old": None, "new": line}},
    }
    # a plan does not write
    assert os.listdir(os.path.join(root, "etc/modprobe.d")) == []
    assert plans.apply(root, one) is True
    assert read(root, one["path"]) == HEADER + line + "\n"


def test_options_plan_folds_every_options_line_of_the_module_into_one(root):
    _write(
        root,
        "etc/modprobe.d/conntrack.conf",
        "# mine\noptions nf_conntrack expect_hashsize=10 hashsize=1024\noptions other x=1\noptions nf_conntrack acct=1\n",
    )
    one = module_files.options_plan(root, "nf_conntrack", {"hashsize": "65536"})
    line = "options nf_conntrack expect_hashsize=10 hashsize=65536 acct=1"
    assert one["new"] == f"# mine\n{line}\noptions other x=1\n"
    assert one["changes"] == {line: {"old": "options nf_conntrack expect_hashsize=10 hashsize=1024", "new": line}}


def test_options_plan_lower_false_keeps_a_higher_value(root):
    text = "options nf_conntrack hashsize=131072\n"
    _write(root, "etc/modprobe.d/conntrack.conf", text)
    kept = module_files.options_plan(root, "nf_conntrack", {"hashsize": 65536}, lower=False)
    assert (kept["new"], kept["changes"]) == (text, {})
    raised = module_files.options_plan(root, "nf_conntrack", {"hashsize": 262144}, lower=False)
    assert raised["new"] == "options nf_conntrack hashsize=262144\n"
    lowered = module_files.options_plan(root, "nf_conntrack", {"hashsize": 65536})
    assert lowered["new"] == "options nf_conntrack hashsize=65536\n"


def test_options_plan_unchanged_file_has_no_changes(root):
    text = HEADER + "options nf_conntrack hashsize=65536\n"
    _write(root, "etc/modprobe.d/conntrack.conf", text)
    one = module_files.options_plan(root, "nf_conntrack", {"hashsize": 65536})
    assert (one["new"], one["changes"], plans.pending(one)) == (text, {}, False)


@pytest.mark.parametrize(
    ("module", "options", "kw", "words"),
    [
        ("nf_conntrack", {}, {}, "options must name at least one module parameter"),
        ("nf_conntrack", {"Hash-Size": 1}, {}, "not a module parameter name: 'Hash-Size'"),
        ("nf_conntrack", {"hashsize": "1.5"}, {}, "hashsize must be a whole number from 0 to 2147483647, got '1.5'"),
        (
            "nf_conntrack",
            {"hashsize": 2**31},
            {},
            "hashsize must be a whole number from 0 to 2147483647, got 2147483648",
        ),
        (
            ["nf_conntrack", "nf_nat"],
            {"hashsize": 1},
            {},
            'module must be one module name, got ["nf_conntrack", "nf_nat"]',
        ),
        ("nf_conntrack", {"hashsize": 1}, {"lower": "yes"}, "lower must be true or false, got 'yes'"),
    ],
)
def test_options_plan_refuses(root, module, options, kw, words):
    with pytest.raises(SaltInvocationError) as err:
        module_files.options_plan(root, module, options, **kw)
    assert str(err.value) == words


def test_options_plan_refuses_a_file_outside_modprobe_d(root):
    with pytest.raises(SaltInvocationError, match="^a modprobe file must be /etc/modprobe.d/"):
        module_files.options_plan(root, "nf_conntrack", {"hashsize": 1}, path="/etc/passwd")


def test_blacklist_plan_hard(root):
    one = module_files.blacklist_plan(root, ["nf_conntrack", "nf_conntrack"], hard=True)
    assert one["path"] == "/etc/modprobe.d/conntrack-blacklist.conf"
    assert one["new"] == HEADER + "blacklist nf_conntrack\ninstall nf_conntrack /bin/false\n"
    assert one["changes"] == {
        "blacklist nf_conntrack": {"old": None, "new": "blacklist nf_conntrack"},
        "install nf_conntrack /bin/false": {"old": None, "new": "install nf_conntrack /bin/false"},
    }


def test_blacklist_plan_soft_takes_out_an_install_line(root):
    _write(root, "etc/modprobe.d/conntrack-blacklist.conf", "blacklist nf_conntrack\ninstall nf_conntrack /bin/true\n")
    one = module_files.blacklist_plan(root, "nf_conntrack")
    assert one["new"] == "blacklist nf_conntrack\n"
    assert one["changes"] == {"install nf_conntrack /bin/true": {"old": "present", "new": "absent"}}


def test_blacklist_plan_absent(root):
    _write(
        root,
        "etc/modprobe.d/conntrack-blacklist.conf",
        "# keep\nblacklist nf_conntrack\ninstall nf_conntrack /bin/false\nblacklist pcspkr\n",
    )
    one = module_files.blacklist_plan(root, ["nf_conntrack"], present=False)
    assert one["new"] == "# keep\nblacklist pcspkr\n"
    assert one["changes"] == {
        "blacklist nf_conntrack": {"old": "present", "new": "absent"},
        "install nf_conntrack /bin/false": {"old": "present", "new": "absent"},
    }


@pytest.mark.parametrize(
    ("names", "kw"),
    [("-r", {}), ([], {}), ("nf conntrack", {}), ([f"m{i}" for i in range(65)], {}),
     ("nf_conntrack", {"hard": 1}), ("nf_conntrack", {"present": "false"})],
)  # fmt: skip
def test_blacklist_plan_refuses(root, names, kw):
    with pytest.raises(SaltInvocationError):
        module_files.blacklist_plan(root, names, **kw)


def test_blacklisted_elsewhere(root):
    _write(root, "etc/modprobe.d/conntrack-blacklist.conf", "blacklist nf_conntrack\n")
    _write(root, "etc/modprobe.d/local.conf", "  blacklist nf_conntrack  \n")
    _write(root, "etc/modprobe.d/hard.conf", "install nf_conntrack /bin/false\ninstall nf_nat /bin/true\n")
    _write(root, "etc/modprobe.d/commented.conf", "# blacklist nf_conntrack\nblacklist nf_conntrack_netlink\n")
    _write(root, "etc/modprobe.d/README", "blacklist nf_conntrack\n")
    found = module_files.blacklisted_elsewhere(root, ["nf_conntrack", "nf_nat"], module_files.BLACKLIST_FILE)
    assert found == {"nf_conntrack": ["/etc/modprobe.d/hard.conf", "/etc/modprobe.d/local.conf"]}


def test_blacklisted_elsewhere_without_modprobe_d(tmp_path):
    assert module_files.blacklisted_elsewhere(str(tmp_path), ["nf_conntrack"], module_files.BLACKLIST_FILE) == {}


def test_udev_running(tmp_path):
    root = str(tmp_path)
    assert module_files.udev_running(root) is False
    (tmp_path / "run/udev/data").mkdir(parents=True)
    assert module_files.udev_running(root) is True
    os.rmdir(tmp_path / "run/udev/data")
    _write(root, "run/udev/control", "")
    assert module_files.udev_running(root) is True


@pytest.mark.parametrize(
    ("module", "sysctl_at", "run", "prefix"),
    [
        ("nf_conntrack", "usr/lib/systemd/systemd-sysctl", "/usr/lib/systemd/systemd-sysctl", "/net/netfilter"),
        ("nf_conntrack", "lib/systemd/systemd-sysctl", "/lib/systemd/systemd-sysctl", "/net/netfilter"),
        ("ip_conntrack", None, "/usr/lib/systemd/systemd-sysctl", "/net/ipv4/netfilter"),
    ],
)
def test_udev_plan(root, module, sysctl_at, run, prefix):
    if sysctl_at:
        _write(root, sysctl_at, "")
    one = module_files.udev_plan(root, module)
    rule = f'ACTION=="add", SUBSYSTEM=="module", KERNEL=="{module}", RUN+="{run} --prefix={prefix}"\n'
    assert one["path"] == "/etc/udev/rules.d/90-conntrack-sysctl.rules"
    assert one["new"] == HEADER + rule
    assert one["changes"] == {one["path"]: {"old": None, "new": HEADER + rule}}


def test_udev_plan_rewrites_a_file_holding_something_else(root):
    _write(root, "etc/udev/rules.d/90-conntrack-sysctl.rules", "# old rule\n")
    one = module_files.udev_plan(root)
    assert one["changes"][one["path"]]["old"] == "# old rule\n"
    assert one["new"].startswith(HEADER + 'ACTION=="add"')


def test_udev_plan_absent(root):
    _write(root, "etc/udev/rules.d/90-conntrack-sysctl.rules", "rule\n")
    one = module_files.udev_plan(root, present=False)
    assert (one["new"], one["changes"]) == (None, {one["path"]: {"old": "rule\n", "new": None}})
    assert plans.apply(root, one) is True
    assert not os.path.exists(os.path.join(root, "etc/udev/rules.d/90-conntrack-sysctl.rules"))
    gone = module_files.udev_plan(root, present=False)
    assert (gone["changes"], plans.pending(gone)) == ({}, False)


def test_udev_plan_refuses_a_rules_file_elsewhere(root):
    with pytest.raises(SaltInvocationError, match="^a udev file must be /etc/udev/rules.d/"):
        module_files.udev_plan(root, path="/lib/udev/rules.d/90-x.rules")


def test_soft_blacklist_of_the_core_alone_is_flagged():
    # Debian 6.1 (vm tier): blacklist nf_conntrack alone, an nft ct rule still loads it via nft_ct.
    gap = module_files.soft_blacklist_gap(["nf_conntrack"], hard=False)
    assert "nft_ct, xt_conntrack, xt_state still loads nf_conntrack" in gap and "hard: true" in gap
    assert "xt_state still" in module_files.soft_blacklist_gap(["nf_conntrack", "nft_ct", "xt_conntrack"], False)
    assert module_files.soft_blacklist_gap(["nf_conntrack", "nft_ct", "xt_conntrack", "xt_state"], False) is None
    assert module_files.soft_blacklist_gap(["nf_conntrack"], hard=True) is None
    assert module_files.soft_blacklist_gap(["xt_state"], hard=False) is None
