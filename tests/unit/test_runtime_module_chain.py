"""saltext_conntrack.runtime.module_chain: holders, unload order, built-in conntrack.

Fixture kernels are /proc/modules and /sys/module trees under tmp_path.
"""

import pytest
from salt.exceptions import CommandExecutionError

from saltext_conntrack.runtime import module_chain
from tests.support.fixtures import _write
from tests.support.hosts import MODULES, MODULES_IN_USE, modular_kernel

RELEASE = "6.17.0-fixture"
# The chain nf_conntrack heads in MODULES; x_tables is not in it. nf_defrag_ipv4
# is nf_conntrack's own dependency (nf_conntrack holds it): unloaded after it,
# as modprobe -r does, since nothing else holds it.
ORDER = [
    "iptable_nat",
    "nf_conntrack_ipv4",
    "nf_conntrack_netlink",
    "xt_CT",
    "xt_MASQUERADE",
    "xt_conntrack",
    "xt_state",
    "nf_nat",
    "nf_conntrack",
]
DEPS = ["nf_defrag_ipv4"]


def test_proc_modules_reads_refcounts_and_users(tmp_path):
    root = modular_kernel(str(tmp_path))
    mods = module_chain.proc_modules(root)
    assert sorted(mods) == sorted(MODULES)
    assert mods["nf_nat"] == {"refcnt": 2, "used_by": ["iptable_nat", "xt_MASQUERADE"]}
    assert mods["xt_state"] == {"refcnt": 0, "used_by": []}


def test_proc_modules_skips_short_lines_and_odd_refcounts(tmp_path):
    _write(str(tmp_path), "proc/modules", "nf_conntrack 16384 -\nbroken\nnf_nat 16384 x nf_x, Live 0x0\n")
    assert module_chain.proc_modules(str(tmp_path)) == {
        "nf_nat": {"refcnt": 0, "used_by": ["nf_x"]},
    }


def test_proc_modules_missing_is_none(tmp_path):
    assert module_chain.proc_modules(str(tmp_path)) is None


def test_unload_plan_orders_every_module_after_its_holders(tmp_path):
    root = modular_kernel(str(tmp_path))
    plan = module_chain.unload_plan(root, RELEASE)
    assert plan == {
        "module": "nf_conntrack",
        "loaded": True,
        "builtin": False,
        "reason": None,
        "order": ORDER + DEPS,
        "refcnt": {name: MODULES[name][0] for name in ORDER + DEPS},
        "in_use": [],
    }
    for name in ORDER:
        for holder in MODULES[name][1]:
            assert plan["order"].index(holder) < plan["order"].index(name)


def test_unload_plan_reports_a_module_held_by_more_than_its_module_holders(tmp_path):
    root = modular_kernel(str(tmp_path), MODULES_IN_USE)
    plan = module_chain.unload_plan(root, RELEASE)
    assert plan["in_use"] == ["xt_conntrack"]
    assert plan["refcnt"]["xt_conntrack"] == 3
    # the held module goes as late as its holders allow, so a refusal comes before nothing else is left
    assert plan["order"] == [
        "iptable_nat",
        "nf_conntrack_ipv4",
        "nf_conntrack_netlink",
        "xt_CT",
        "xt_MASQUERADE",
        "xt_state",
        "nf_nat",
        "xt_conntrack",
        "nf_conntrack",
        "nf_defrag_ipv4",
    ]


def test_sys_module_refcnt_wins_over_proc_modules(tmp_path):
    root = modular_kernel(str(tmp_path))
    _write(root, "sys/module/xt_state/refcnt", "2\n")
    plan = module_chain.unload_plan(root, RELEASE)
    assert plan["refcnt"]["xt_state"] == 2
    assert plan["in_use"] == ["xt_state"]


def test_holders_fall_back_to_proc_modules_without_sys_module(tmp_path):
    root = str(tmp_path)
    _write(root, "proc/modules", "nf_conntrack 16384 1 xt_state, Live 0x0\nxt_state 16384 0 - Live 0x0\n")
    plan = module_chain.unload_plan(root, RELEASE)
    assert plan["order"] == ["xt_state", "nf_conntrack"]
    assert plan["refcnt"] == {"nf_conntrack": 1, "xt_state": 0}
    assert plan["in_use"] == []


def test_ip_conntrack_heads_the_chain_on_old_kernels(tmp_path):
    root = str(tmp_path)
    _write(root, "proc/modules", "ip_conntrack 53409 0 - Live 0xffffffff88600000\next3 123337 2 - Live 0x0\n")
    _write(root, "sys/module/ip_conntrack/refcnt", "0\n")
    plan = module_chain.unload_plan(root, RELEASE)
    assert (plan["module"], plan["loaded"], plan["order"], plan["in_use"]) == (
        "ip_conntrack",
        True,
        ["ip_conntrack"],
        [],
    )


def test_a_holder_cycle_is_refused(tmp_path):
    modules = {"nf_conntrack": (1, ["xt_loop"]), "xt_loop": (1, ["nf_conntrack"])}
    root = modular_kernel(str(tmp_path), modules)
    with pytest.raises(CommandExecutionError) as err:
        module_chain.unload_plan(root, RELEASE)
    assert str(err.value) == "the holders of nf_conntrack, xt_loop form a cycle: cannot order the unload"


def test_not_loaded(tmp_path):
    root = str(tmp_path)
    _write(root, "proc/modules", "ext4 16384 2 - Live 0x0\n")
    assert module_chain.builtin(root, RELEASE) == (None, None)
    assert module_chain.unload_plan(root, RELEASE) == {
        "module": "nf_conntrack",
        "loaded": False,
        "builtin": False,
        "reason": None,
        "order": [],
        "refcnt": {},
        "in_use": [],
    }


def test_built_in_per_modules_builtin(tmp_path):
    root = str(tmp_path)
    _write(root, "proc/modules", "ext4 16384 2 - Live 0x0\n")
    _write(root, f"lib/modules/{RELEASE}/modules.builtin", "kernel/net/netfilter/nf_conntrack.ko\n")
    reason = "nf_conntrack is built into this kernel (modules.builtin) and cannot be unloaded"
    assert module_chain.builtin(root, RELEASE) == ("nf_conntrack", reason)
    plan = module_chain.unload_plan(root, RELEASE)
    assert plan == {
        "module": "nf_conntrack",
        "loaded": True,
        "builtin": True,
        "reason": reason,
        "order": [],
        "refcnt": {},
        "in_use": [],
    }
    # another release's index says nothing about this kernel
    assert module_chain.builtin(root, "5.10.0-other") == (None, None)


def test_a_loaded_module_is_not_built_in_whatever_modules_builtin_says(tmp_path):
    root = modular_kernel(str(tmp_path))
    _write(root, f"lib/modules/{RELEASE}/modules.builtin", "kernel/net/netfilter/nf_conntrack.ko\n")
    assert module_chain.builtin(root, RELEASE) == (None, None)


def test_built_in_without_loadable_module_support(tmp_path):
    root = str(tmp_path)
    (tmp_path / "sys/module/nf_conntrack/parameters").mkdir(parents=True)
    reason = (
        "this kernel has no /proc/modules (no loadable module support): nf_conntrack is built in and cannot be unloaded"
    )
    assert module_chain.builtin(root, RELEASE) == ("nf_conntrack", reason)
    plan = module_chain.unload_plan(root, RELEASE)
    assert (plan["builtin"], plan["loaded"], plan["reason"], plan["order"]) == (True, True, reason, [])


def test_no_loadable_modules_and_no_conntrack(tmp_path):
    plan = module_chain.unload_plan(str(tmp_path), RELEASE)
    assert (plan["module"], plan["loaded"], plan["builtin"]) == ("nf_conntrack", False, False)
    assert plan["reason"] == "this kernel has no loadable modules and no conntrack"


def test_a_dependency_held_outside_the_chain_stays(tmp_path):
    # nf_defrag_ipv6 also held by a module outside the chain, nf_defrag_ipv4 by a socket (refcnt 2).
    mods = {**MODULES, "nf_defrag_ipv4": (2, ["nf_conntrack"]), "nf_defrag_ipv6": (2, ["nf_conntrack", "nf_tproxy_ipv6"]),
            "nf_tproxy_ipv6": (0, [])}  # fmt: skip
    root = modular_kernel(str(tmp_path), mods)
    plan = module_chain.unload_plan(root, RELEASE)
    assert plan["order"] == ORDER and plan["in_use"] == []
