"""conntrack.diagnose and conntrack.textfile through the real Salt loader, on
fixture trees (tables of hosts this kernel cannot show), and textfile.sls as
the formula renders it."""

import os

import pytest
import yaml
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support.fixtures import ERAS, TABLE_LINES, build_root

DNS = "udp      17 {t} src=10.0.0.{h} dst=10.0.0.53 sport={p} dport=53 [UNREPLIED] src=10.0.0.53 dst=10.0.0.{h} sport=53 dport={p} mark=0 use=1"
EST = "tcp      6 {t} ESTABLISHED src=10.0.1.{h} dst=10.0.0.80 sport={p} dport=443 src=10.0.0.80 dst=10.0.1.{h} sport=443 dport={p} [ASSURED] mark=0 use=1"
TW = "tcp      6 {t} TIME_WAIT src=10.0.2.{h} dst=10.0.0.81 sport={p} dport=80 src=10.0.0.81 dst=10.0.2.{h} sport=80 dport={p} [ASSURED] mark=0 use=1"


def lines(template, n, t):
    return [template.format(t=t, h=i % 200 + 1, p=10000 + i) for i in range(n)]


def by_id(result):
    return {f["id"]: f for f in result["findings"]}


@pytest.mark.parametrize("era", ERAS)
def test_dns_flood_every_era(make_loaders, tmp_path, era):
    table = lines(DNS, 600, 29) + TABLE_LINES
    mods = make_loaders(build_root(tmp_path, era, count=606, maximum=1000, table=table)).modules
    result = mods.conntrack.diagnose()
    udp = by_id(result)["unreplied_udp_port"]
    assert udp["evidence"]["port"] == "udp/53" and udp["evidence"]["unreplied"] == 601
    assert udp["evidence"]["walked"] == 606 and udp["evidence"]["udp_timeout"] == 30
    fix = yaml.safe_load(udp["fix"])
    assert fix == {
        "conntrack-udp-53-untracked": {
            "conntrack.notrack": [{"flows": [{"proto": "udp", "port": 53}]}, {"persist": True}]
        }
    }
    assert "NAT" in udp["side_effects"][0]
    summary = mods.conntrack.summary(top=5)
    assert (summary.pop("complete"), summary.pop("share")) == (True, 100.0)
    assert result["summary"] == {**summary, "top": result["summary"]["top"]}
    assert result["walk"]["complete"] is True and result["walk"]["entries"] == 606
    assert (result["walk"]["share"], result["walk"]["stopped"], result["walk"]["timeout"]) == (100.0, None, 5)


def test_tcp_findings_and_order(make_loaders, tmp_path):
    # 300 ESTABLISHED idle 1-5 days (remaining 10000..), 100 fresh, 300 TIME_WAIT.
    table = lines(EST, 300, 10999) + lines(EST, 100, 431999) + lines(TW, 300, 100)
    mods = make_loaders(build_root(tmp_path, count=700, maximum=1000, table=table)).modules
    result = mods.conntrack.diagnose()
    found = by_id(result)
    assert found["idle_established"]["evidence"]["idle_over_1h"] == 300
    assert found["idle_established"]["evidence"]["established"] == 400
    assert found["time_wait_churn"]["evidence"]["time_wait"] == 300
    assert "tcp_time_wait: 30" in found["time_wait_churn"]["fix"]
    assert "tcp_established: 3600" in found["idle_established"]["fix"]
    ranks = [{"critical": 3, "warning": 2, "info": 1}[f["severity"]] for f in result["findings"]]
    assert ranks == sorted(ranks, reverse=True)
    for f in result["findings"]:
        assert set(f) == {"id", "severity", "evidence", "why", "fix", "fix_type", "side_effects"}
        assert f["why"].count(". ") == 0, f["why"]  # one sentence


def test_idle_line_is_one_hour(make_loaders, tmp_path):
    # remaining 428399 is idle 3601 s; 428400..429999 are within the hour or
    # share a 1000 s bucket with such entries, so they are not counted.
    table = lines(EST, 200, 427999) + lines(EST, 200, 429500)
    mods = make_loaders(build_root(tmp_path, count=400, table=table)).modules
    assert by_id(mods.conntrack.diagnose())["idle_established"]["evidence"]["idle_over_1h"] == 200


def test_top_source_and_destination(make_loaders, tmp_path):
    table = [EST.format(t=431999, h=7, p=10000 + i) for i in range(300)] + lines(TW, 50, 100)
    found = by_id(make_loaders(build_root(tmp_path, table=table)).modules.conntrack.diagnose())
    assert found["top_source"]["evidence"] == {**found["top_source"]["evidence"], "address": "10.0.1.7", "entries": 300}
    assert "ip saddr 10.0.1.7 ct state new ct count over" in found["top_source"]["fix"]
    assert found["top_source"]["fix_type"] == "nft" and found["top_destination"]["evidence"]["address"] == "10.0.0.80"


def test_sample_reads_a_prefix(make_loaders, tmp_path):
    table = lines(TW, 400, 100) + lines(DNS, 400, 29)
    mods = make_loaders(build_root(tmp_path, count=800, table=table)).modules
    result = mods.conntrack.diagnose(sample=400)
    assert result["walk"]["entries"] == 400 and result["walk"]["complete"] is False
    assert result["summary"]["by_protocol"] == {"tcp": 400}
    assert "unreplied_udp_port" not in by_id(result)  # the sample never reached them
    assert by_id(result)["time_wait_churn"]["evidence"]["walked"] == 400
    assert mods.conntrack.diagnose(sample=800)["walk"]["complete"] is True


def test_timeout_stops_the_walk_with_what_it_read(make_loaders, tmp_path, monkeypatch):
    from saltext_conntrack.runtime import table as core_table  # the copy the loaders use

    table = lines(TW, 4000, 100)
    mods = make_loaders(build_root(tmp_path, count=4000, table=table)).modules
    clock = iter(range(0, 10**6, 3))
    monkeypatch.setattr(core_table, "CHUNK", 4096)
    monkeypatch.setattr(core_table, "monotonic", lambda: float(next(clock)))
    result = mods.conntrack.diagnose(timeout=1)
    walk = result["walk"]
    assert walk["complete"] is False and walk["stopped"] == "timeout" and 0 < walk["entries"] < 4000
    assert 0 < walk["share"] < 100 and result["summary"]["total"] == walk["entries"]
    part = mods.conntrack.summary(timeout=1)
    assert part["complete"] is False and part["share"] < 100
    assert mods.conntrack.summary(timeout=0)["complete"] is True


def test_walk_false_never_reads_the_table(make_loaders, tmp_path):
    root = build_root(tmp_path, count=800, maximum=1000, buckets=100)
    table = tmp_path / "proc/net/nf_conntrack"
    table.unlink()
    table.mkdir()  # any read of it fails
    mods = make_loaders(root).modules
    result = mods.conntrack.diagnose(walk=False)
    assert result["walk"]["walked"] is False and result["summary"] is None
    chains = by_id(result)["hash_chains_long"]
    assert chains["evidence"]["max_per_bucket"] == 10.0
    assert yaml.safe_load(chains["fix"])["conntrack-buckets"]["conntrack.tuned"] == [{"buckets": 1000}]
    assert by_id(result)["limit_low"]["severity"] == "warning"  # 80% used, no drops
    with pytest.raises(CommandExecutionError, match="cannot read the conntrack table"):
        mods.conntrack.diagnose()


def test_drops_since_boot_without_an_earlier_sample(make_loaders, tmp_path):
    mods = make_loaders(build_root(tmp_path, count=10, maximum=1000, drop=7)).modules
    # diagnose's own status() is this fresh cachedir's first sample: no recent block yet.
    found = by_id(mods.conntrack.diagnose(walk=False))
    assert found["drops_since_boot"]["evidence"]["drop_since_boot"] == 7
    assert "drops_rising" not in found
    # The next look has an earlier sample: those drops are past, not rising.
    assert mods.conntrack.status(window=0)["recent"]["drop"] == 0
    assert "drops_rising" not in by_id(mods.conntrack.diagnose(walk=False))


@pytest.mark.parametrize("era", ["centos5", "6.17"])
def test_iptables_config_without_load_list(make_loaders, tmp_path, era):
    root = build_root(tmp_path, era)
    conf = tmp_path / "etc/sysconfig/iptables-config"
    conf.parent.mkdir(parents=True)
    conf.write_text('IPTABLES_MODULES_UNLOAD="yes"\nIPTABLES_SYSCTL_LOAD_LIST=".nf_nat"\n')
    found = by_id(make_loaders(root).modules.conntrack.diagnose(walk=False))["iptables_restart_resets"]
    token = ".ip_conntrack" if era == "centos5" else ".nf_conntrack"
    fix = yaml.safe_load(found["fix"])["/etc/sysconfig/iptables-config"]["conntrack.iptables_config"]
    assert fix == [{"settings": {"IPTABLES_SYSCTL_LOAD_LIST": f".nf_nat {token}"}}]
    conf.write_text(f'IPTABLES_SYSCTL_LOAD_LIST="{token}"\n')
    assert "iptables_restart_resets" not in by_id(make_loaders(root).modules.conntrack.diagnose(walk=False))


def test_not_persisted_against_boot_files(make_loaders, tmp_path):
    root = build_root(tmp_path, maximum=262144)
    (tmp_path / "etc/sysctl.d").mkdir(parents=True)
    (tmp_path / "etc/sysctl.d/10-a.conf").write_text("net.nf_conntrack_max = 524288\n")
    (tmp_path / "proc/sys/net/netfilter/nf_conntrack_udp_timeout").write_text("60\n")
    found = by_id(make_loaders(root).modules.conntrack.diagnose(walk=False))["not_persisted"]
    assert {(v["key"], v["runtime"], v["boot"]) for v in found["evidence"]["values"]} == {
        ("net.netfilter.nf_conntrack_max", 262144, "524288"),  # the alias counts as the key
        ("net.netfilter.nf_conntrack_udp_timeout", 60, None),
    }
    assert yaml.safe_load(found["fix"])["conntrack-persist"]["conntrack.tuned"] == [
        {"max": 262144},
        {"timeouts": {"udp": 60}},
    ]


@pytest.mark.parametrize(
    "bad", [{"walk": "yes"}, {"sample": 0}, {"sample": "1e3"}, {"top": 0}, {"walk": False, "sample": 10}, {"top": True}]
)
def test_bad_arguments(make_loaders, tmp_path, bad):
    with pytest.raises(SaltInvocationError):
        make_loaders(build_root(tmp_path)).modules.conntrack.diagnose(**bad)


def test_textfile_writes_atomically_and_validates_first(make_loaders, tmp_path):
    root = build_root(tmp_path, count=606, maximum=1000, table=lines(DNS, 600, 29) + TABLE_LINES)
    (tmp_path / "var/lib/node").mkdir(parents=True)
    mods = make_loaders(root).modules
    ret = mods.conntrack.textfile(path="/var/lib/node/ct.prom", top=2)
    assert ret["written"] == str(tmp_path / "var/lib/node/ct.prom")
    text = (tmp_path / "var/lib/node/ct.prom").read_text()
    assert ret["bytes"] == len(text.encode()) and "unreplied_udp_port" in ret["findings"]
    assert 'saltext_conntrack_finding{id="unreplied_udp_port"} 2\n' in text
    assert 'saltext_conntrack_finding{id="drops_rising"} 0\n' in text
    assert 'saltext_conntrack_protocol_entries{protocol="udp"} 601\n' in text
    assert 'saltext_conntrack_top_dport_entries{protocol="udp",port="53"} 601\n' in text
    assert text.count("saltext_conntrack_top_src_entries{") == 2  # top 2 only
    assert "node_nf_conntrack" not in text
    assert os.listdir(tmp_path / "var/lib/node") == ["ct.prom"]  # no temp file left
    os.symlink("/tmp", tmp_path / "var/lib/out")
    for path, error in (
        ("relative.prom", SaltInvocationError),
        ("/var/lib/node/ct.txt", SaltInvocationError),
        ("/var/lib/node/../node/x.prom", SaltInvocationError),
        ("/var/lib/missing/ct.prom", SaltInvocationError),
        ("/var/lib/out/ct.prom", CommandExecutionError),  # a link out of conntrack.root
    ):
        with pytest.raises(error):
            mods.conntrack.textfile(path=path)
    with pytest.raises(SaltInvocationError):
        mods.conntrack.textfile(path="/var/lib/node/ct.prom", top=0)
    assert (tmp_path / "var/lib/node/ct.prom").read_text() == text  # refused calls wrote nothing
    assert not os.path.exists("/tmp/ct.prom")


def test_textfile_sls_schedules_the_function(make_loaders, file_roots):
    loaders = make_loaders("/", file_roots=file_roots)
    data = loaders.modules.state.show_sls("conntrack.textfile", pillar={"conntrack": {"textfile": {"sample": 100000}}})
    body = data["conntrack-textfile"]["schedule"]
    args = {k: v for item in body if isinstance(item, dict) for k, v in item.items()}
    assert "present" in body and args["function"] == "conntrack.textfile" and args["seconds"] == 60
    assert args["job_kwargs"] == {
        "path": "/var/lib/prometheus/node-exporter/saltext_conntrack.prom",
        "sample": 100000,
        "timeout": 2,
        "top": 5,
    }
    off = loaders.modules.state.show_sls("conntrack.textfile", pillar={"conntrack": {"textfile": {"enabled": False}}})
    assert "absent" in off["conntrack-textfile"]["schedule"]
