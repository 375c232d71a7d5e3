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
