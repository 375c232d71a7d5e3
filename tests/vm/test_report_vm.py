"""Checks 4 and 5 on Debian's modular kernel: the beacon on a real table-full
line and the guarded remediation; status, recommend and diagnose on 6.1."""

from tests.support.vm import check


def test_report_functions_on_the_6_1_kernel(boot1):
    ret = check(boot1, "kernel_defaults")
    assert ret["rules"]["rc"] == 0
    ram_ceiling = ret["mem_kib"] * 1024 // 16384 // 2  # RAMSIZE / 16384 / (64 / 32)
    status = ret["status"]
    assert status["flavour"] == "nf_conntrack" and status["initial_netns"] is True
    assert (status["max"], status["buckets"], status["hashsize"]) == (65536, 65536, 65536)
    rec = ret["recommend"]
    assert rec["arch"] == 64 and abs(rec["max"] - ram_ceiling) <= 1, (rec["max"], ram_ceiling)
    # 6.1 sizes one entry per bucket: the probe that answered is the kernel release
    assert "kernel 6.1" in rec["bucket_rule"] and "buckets = max" in rec["bucket_rule"]
    assert rec["current"] == {"count": 0, "hashsize": 65536, "max": 65536}
    # entry size read from the guest's /proc/slabinfo, not assumed
    assert ret["probes"]["/proc/slabinfo"] and "(/proc/slabinfo)" in rec["rules"]["memory"]
    assert rec["needs_change"] is True and "above the RAM formula's ceiling" in rec["reasons"][0]
    assert ret["diagnose"]["walk"]["walked"] is True and ret["diagnose"]["walk"]["complete"] is True
    plan = ret["unload_plan"]
    assert plan["builtin"] is False and plan["loaded"] is True and plan["order"][:2] == ["nft_ct", "nf_conntrack"]


def test_beacon_sees_the_kernels_table_full_line_and_remediation_raises(boot2):
    ret = check(boot2, "beacon_remediate")
    assert ret["rules"]["rc"] == 0 and ret["accepted"] == 20
    assert any("nf_conntrack: table full, dropping packet" in line for line in ret["dmesg"]), ret["dmesg"]
    full = [e for run in ret["runs"] for e in run["events"] if e.get("tag") == "table_full"]
    assert len(full) == 1, ret["runs"]
    event = full[0]
    assert event["source"] == "kmsg" and event["status"]["max"] == 20 and event["status"]["usage"] == 100.0
    assert ret["full_max"] == 20
    diagnose = ret["diagnose"]
    assert diagnose["summary"]["total"] >= 20 and diagnose["findings"], diagnose["findings"]
    rem = ret["remediate"]
    assert rem["remediated"] is True and rem["refused"] is None, rem
    assert rem["old"]["max"] == 20 and rem["new"]["max"] > 20
    assert ret["after"]["max"] == rem["new"]["max"]
    assert f"net.netfilter.nf_conntrack_max = {rem['new']['max']}\n" in ret["persisted"]
    assert ret["accepted_after"] == 5  # tracked again


def test_boot_and_guest_times(boot1, boot2):
    """Measured, printed for docs/vm.md; bounded so a slow regression fails."""
    for boot in (boot1, boot2):
        assert boot["rc"] == 0 and boot["done"] is True
        print(
            f"{boot['phase']}: {boot['accel']} boot {boot['uptime_at_start']} s to guest.py, "
            f"guest.py {boot['uptime_at_end'] - boot['uptime_at_start']:.1f} s, "
            f"vng start to exit {boot['boot_seconds']} s, minion {boot.get('minion_timings')}, checks {boot['timings']}"
        )
        assert boot["boot_seconds"] < 600


def test_ctnetlink_is_a_module_here_and_answers_for_a_root_without_proc_net(boot1):
    ret = check(boot1, "netlink_module")
    # Debian builds ctnetlink as nf_conntrack_netlink: not loaded by a rule load,
    # loaded by the kernel on the first ctnetlink request.
    assert ret["loaded_before"] is False and ret["loaded_after"] is True
    assert ret["unload"]["rc"] == 0, ret["unload"]
    # Read back to back in a namespace of the test's own: nothing moves between.
    assert ret["netlink_stats"] == {k: v for k, v in ret["proc_stats"].items() if k in ret["netlink_stats"]}
    assert ret["netlink_global"]["count"] == ret["proc_count"] == ret["proc_stats"]["entries"] == 55
    status = ret["status"]
    assert status["source"] == {"count": "procfs", "max": "procfs", "stats": "netlink"} and status["unknown"] == {}
    assert status["count"] == 55 and status["stats"]["entries"] == 55 and status["stats"]["drop"] == 0
    assert ret["walk_source"] == "netlink"
    assert {**ret["netlink_summary"], "source": None} == {**ret["proc_summary"], "source": None}
    assert ret["netlink_summary"]["total"] == 55
    # The flood goes, exactly; a dry run and a bad filter change nothing.
    before = ret["table_before"]
    flood = [line for line in before if line.startswith("udp") and "dport=53 " in line and "[UNREPLIED]" in line]
    assert len(before) == 55 and len(flood) == 40
    assert ret["flush_test"]["test"] is True and (ret["flush_test"]["matched"], ret["flush_test"]["deleted"]) == (40, 0)
    assert ret["table_after_test"] == before
    assert ret["bad_filter"].startswith("SaltInvocationError") and "dport" in ret["bad_filter"]
    assert ret["table_after_bad"] == before
    assert (ret["flush"]["matched"], ret["flush"]["deleted"]) == (40, 40)
    assert ret["table_after"] == [line for line in before if line not in flood]
