"""saltext_conntrack.firewall.stateless: taking state matches out of a saved
rules file without cutting the host off from traffic it gets now.

``iptables-restore --test`` is the real one (/usr/sbin); it parses, never commits.
"""

import os

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.common import commands
from saltext_conntrack.firewall import stateless
from tests.support.fixtures import _write
from tests.support.hosts import SAVED_RULES

MARK = stateless.STATELESS_MARK
needs_restore = pytest.mark.skipif(
    not commands.which("iptables-restore") or os.geteuid() != 0, reason="needs iptables-restore, run as root"
)

OPEN_INPUT = """\
*filter
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -m conntrack --ctstate INVALID -j DROP
-A INPUT -p tcp --dport 22 -j ACCEPT
COMMIT
"""


@pytest.fixture
def root(tmp_path):
    top = tmp_path / "root"
    top.mkdir()
    return os.path.realpath(top)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("-A INPUT -p tcp -m conntrack --ctstate NEW -m tcp --dport 22 -j ACCEPT", "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"),
        ("-A INPUT -m state --state NEW -p udp --dport 53 -j ACCEPT", "-A INPUT -p udp --dport 53 -j ACCEPT"),
        ("-A INPUT -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT", None),
        ("-A INPUT -m conntrack ! --ctstate NEW -j ACCEPT", None),
        ("-A INPUT -m conntrack --ctstate NEW -j DROP", None),
        ("-A INPUT -m state --ctstate NEW -j ACCEPT", None),
        ("-A INPUT -m conntrack --ctstate NEW --ctstatus ASSURED -j ACCEPT", None),
        ("-A INPUT -m state --state NEW -m conntrack --ctstate NEW -j ACCEPT", None),
        ("-A INPUT -p tcp --dport 22 -j ACCEPT", None),
    ],
)  # fmt: skip
def test_new_only_stripped(rule, expected):
    assert stateless.new_only_stripped(rule) == expected


def test_stateful_pattern():
    assert stateless.STATEFUL.search("-A INPUT -m state --state ESTABLISHED -j ACCEPT")
    assert stateless.STATEFUL.search("-A INPUT -m conntrack --ctstatus ASSURED -j ACCEPT")
    assert not stateless.STATEFUL.search("-A INPUT -m statistic --mode random -j ACCEPT")
    assert not stateless.STATEFUL.search("-A INPUT -m comment --comment stateless -j ACCEPT")


def test_plan_refuses_taking_an_accept_out_of_a_dropping_chain(root):
    _write(root, "etc/sysconfig/iptables", SAVED_RULES)
    with pytest.raises(CommandExecutionError) as err:
        stateless.plan(root, "/etc/sysconfig/iptables")
    assert str(err.value).startswith(
        "/etc/sysconfig/iptables: taking out line 6: -A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT "
        "removes an ACCEPT from a chain that drops what it does not accept"
    )
    assert str(err.value).endswith("Add stateless rules for that traffic first, or pass force=True")
    with open(os.path.join(root, "etc/sysconfig/iptables"), encoding="utf-8") as fh:
        assert fh.read() == SAVED_RULES


def test_plan_refuses_an_accept_before_a_closing_drop(root):
    text = OPEN_INPUT.replace("-A INPUT -p tcp --dport 22 -j ACCEPT\n", "-A INPUT -j REJECT\n")
    _write(root, "etc/iptables/rules.v4", text)
    with pytest.raises(CommandExecutionError, match="taking out line 4: -A INPUT -m state"):
        stateless.plan(root, "/etc/iptables/rules.v4")


@needs_restore
def test_plan_forced_comment(root):
    _write(root, "etc/sysconfig/iptables", SAVED_RULES)
    one = stateless.plan(root, "/etc/sysconfig/iptables", force=True)
    lines = SAVED_RULES.splitlines(keepends=True)
    lines[5] = MARK + "-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT\n"
    lines[7] = "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n"
    lines[9] = MARK + "-A FORWARD -m conntrack --ctstate INVALID -j DROP\n"
    assert one["new"] == "".join(lines)
    assert one["changes"] == {
        "line 6": {"old": "-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT", "new": lines[5].rstrip("\n")},
        "line 8": {
            "old": "-A INPUT -p tcp -m conntrack --ctstate NEW -m tcp --dport 22 -j ACCEPT",
            "new": "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT",
        },
        "line 10": {"old": "-A FORWARD -m conntrack --ctstate INVALID -j DROP", "new": lines[9].rstrip("\n")},
    }
    assert one["checked_with"] == "iptables-restore"
    assert one["old"] == SAVED_RULES


@needs_restore
def test_plan_remove_in_an_open_chain_needs_no_force(root):
    _write(root, "etc/iptables/rules.v6", OPEN_INPUT)
    one = stateless.plan(root, "/etc/iptables/rules.v6", mode="remove")
    assert one["new"] == OPEN_INPUT.replace("-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT\n", "").replace(
        "-A INPUT -m conntrack --ctstate INVALID -j DROP\n", ""
    )
    assert one["changes"] == {
        "line 4": {"old": "-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT", "new": None},
        "line 5": {"old": "-A INPUT -m conntrack --ctstate INVALID -j DROP", "new": None},
    }
    assert one["checked_with"] == ("ip6tables-restore" if commands.which("ip6tables-restore") else None)


def test_plan_without_stateful_rules_changes_nothing_and_tests_nothing(root):
    text = "*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n"
    _write(root, "etc/sysconfig/iptables", text)
    one = stateless.plan(root, "/etc/sysconfig/iptables")
    assert (one["new"], one["changes"], one["checked_with"]) == (text, {}, None)


@needs_restore
def test_plan_refuses_a_result_iptables_restore_rejects(root):
    text = OPEN_INPUT.replace("-A INPUT -p tcp --dport 22 -j ACCEPT", "-A INPUT -m nosuchmatchxyz -j ACCEPT")
    _write(root, "etc/sysconfig/iptables", text)
    with pytest.raises(CommandExecutionError) as err:
        stateless.plan(root, "/etc/sysconfig/iptables")
    assert str(err.value).startswith(
        "iptables-restore --test rejects the rewritten /etc/sysconfig/iptables, so it was left as it was: "
    )
    assert "nosuchmatchxyz" in str(err.value)


def test_plan_refuses_bad_arguments_and_missing_files(root):
    _write(root, "etc/sysconfig/iptables", OPEN_INPUT)
    with pytest.raises(SaltInvocationError) as err:
        stateless.plan(root, "/etc/sysconfig/iptables", mode="delete")
    assert str(err.value) == "mode must be comment or remove, got 'delete'"
    with pytest.raises(SaltInvocationError) as err:
        stateless.plan(root, "/etc/sysconfig/iptables", force="yes")
    assert str(err.value) == "force must be true or false, got 'yes'"
    with pytest.raises(SaltInvocationError, match="^a saved rules file must be "):
        stateless.plan(root, "/etc/nftables.conf")
    with pytest.raises(CommandExecutionError) as err:
        stateless.plan(root, "/etc/iptables/rules.v4")
    assert str(err.value) == f"no saved rules file at {root}/etc/iptables/rules.v4"
