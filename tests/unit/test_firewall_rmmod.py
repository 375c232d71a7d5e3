"""Unloading the module chain (``firewall.rmmod``): every refusal before the first rmmod,
and the removal in the kernel's order (rmmod itself stubbed: the real one is the kernel tier's)."""

import subprocess

import pytest
from salt.exceptions import CommandExecutionError

from saltext_conntrack.firewall import rmmod

PLAN = {"order": ["nf_nat", "nf_conntrack"], "in_use": [], "refcnt": {"nf_nat": 0, "nf_conntrack": 1}}
RULE = {"rule": "-A INPUT -m state --state NEW -j ACCEPT", "why": "state match", "source": "iptables-save"}


def test_rules_that_need_conntrack_refuse_unless_forced():
    with pytest.raises(CommandExecutionError, match="1 firewall rule.*force=True"):
        rmmod.refuse(PLAN, [RULE], force=False)
    rmmod.refuse(PLAN, [RULE], force=True)
    rmmod.refuse(PLAN, [], force=False)


def test_a_module_in_use_refuses_even_when_forced():
    plan = {**PLAN, "in_use": ["nf_conntrack"]}
    with pytest.raises(CommandExecutionError, match=r"nf_conntrack \(refcnt 1\).*nothing was unloaded"):
        rmmod.refuse(plan, [], force=True)


def _rmmod(monkeypatch, fail=None, loaded_after=None):
    calls = []

    def run(args, check=True, **kwargs):
        calls.append(args)
        code = 1 if args[1] == fail else 0
        return subprocess.CompletedProcess(args, code, "", "rmmod: ERROR: in use" if code else "")

    monkeypatch.setattr(rmmod.commands, "run", run)
    monkeypatch.setattr(rmmod.module_chain, "proc_modules", lambda root: loaded_after or {})
    return calls


def test_remove_in_order_and_checks_nothing_is_left(monkeypatch):
    calls = _rmmod(monkeypatch)
    removed = []
    rmmod.remove("/", PLAN, removed)
    assert calls == [["rmmod", "nf_nat"], ["rmmod", "nf_conntrack"]] and removed == PLAN["order"]


def test_a_failed_rmmod_names_what_was_already_unloaded(monkeypatch):
    _rmmod(monkeypatch, fail="nf_conntrack")
    removed = []
    with pytest.raises(CommandExecutionError, match=r"rmmod nf_conntrack failed after unloading \['nf_nat'\]"):
        rmmod.remove("/", PLAN, removed)
    assert removed == ["nf_nat"]


def test_a_module_still_loaded_afterwards_is_an_error(monkeypatch):
    _rmmod(monkeypatch, loaded_after={"nf_conntrack": {}})
    with pytest.raises(CommandExecutionError, match="still loaded after rmmod: nf_conntrack"):
        rmmod.remove("/", PLAN, [])
