"""Runs inside the vm tier's guest (Debian's modular kernel), as root, against the guest's real ``/``.

``python guest.py PHASE OUT.json`` runs one boot's checks in this one process
(every process start costs seconds under TCG): the real Salt minion, masterless
and in-process (``salt.client.Caller``, what ``salt-call --local`` builds), with
``conntrack.root`` at its default ``/``. Each check records what it saw; the
host-side tests (tests/vm/test_*.py) assert on the JSON. A check that raises is
recorded with its traceback and the next one still runs.

The guest's ``/etc`` and the minion cachedir are writable layers kept by the
host between boots (tests/vm/conftest.py), so phase ``boot2`` is the second
boot of the same machine.
"""

import json
import os
import subprocess
import sys
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "_utils"))
NF = "/proc/sys/net/netfilter"
HASHSIZE = "/sys/module/nf_conntrack/parameters/hashsize"
CHAIN = ("nf_conntrack", "nf_nat", "nft_ct", "xt_conntrack", "nf_conntrack_ftp", "nf_defrag_ipv4", "nf_defrag_ipv6")
BLACKLIST = "/etc/modprobe.d/conntrack-blacklist.conf"
KNOBS = ("max", "buckets", "tcp_timeout_established", "udp_timeout")
# Below the 2 GiB guest's RAM ceiling (62878) and unlike every default: max
# 65536, buckets 65536, established 432000, udp 30.
TUNED = {"max": 49152, "buckets": 16384, "timeouts": {"tcp_established": 7200, "udp": 45}}
CT_RULES = """table inet vmtest {
  chain input { type filter hook input priority 0; ct state established,related accept; }
}
"""
NAT_RULES = """table ip vmnat {
  chain post { type nat hook postrouting priority 100; oifname "lo" masquerade; }
}
"""
ENV = {**os.environ, "PATH": "/usr/sbin:/sbin:/usr/bin:/bin"}


def sh(*cmd, stdin=None):
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=ENV, check=False)
    return {"cmd": " ".join(cmd), "rc": proc.returncode, "out": proc.stdout[-2000:], "err": proc.stderr[-2000:]}


def knobs():
    """The live values (None where the knob does not exist: module not loaded)."""
    out = {}
    for name in KNOBS:
        try:
            with open(f"{NF}/nf_conntrack_{name}", encoding="ascii") as fh:
                out[name] = int(fh.read())
        except OSError:
            out[name] = None
    try:
        with open(HASHSIZE, encoding="ascii") as fh:
            out["hashsize"] = int(fh.read())
    except OSError:
        out["hashsize"] = None
    return out


def modules():
    """Loaded modules: name -> refcnt, from /proc/modules."""
    with open("/proc/modules", encoding="ascii") as fh:
        return {line.split()[0]: int(line.split()[2]) for line in fh}


def chain_loaded():
    return sorted(m for m in modules() if m in CHAIN or m.startswith(("nf_conntrack", "nf_nat", "nft_", "xt_")))


def read(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return None


def load_rules(text):
    """A rule load, as a firewall start does: nft autoloads what the rules need."""
    res = sh("nft", "-f", "-", stdin=text)
    sh("udevadm", "settle", "--timeout=30")
    return res


def firewall_stop():
    """What a firewall restart with IPTABLES_MODULES_UNLOAD=yes does: rules gone,
    the consumers unloaded, then nf_conntrack (modprobe -r takes its now unused
    dependencies, nf_defrag_*, with it)."""
    steps = [sh("nft", "flush", "ruleset")]
    consumers = [m for m in modules() if m.startswith(("nft_ct", "nft_nat", "nft_masq", "nft_chain_nat", "xt_"))]
    consumers += [m for m in modules() if m.startswith(("nf_nat", "nf_conntrack_")) and m != "nf_conntrack"]
    if consumers:
        steps.append(sh("modprobe", "-r", "-a", *consumers))
    steps.append(sh("modprobe", "-r", "nf_conntrack"))
    return steps


class Minion:
    """The masterless minion's loaders, in this process: grains, execution
    modules, states and beacons loaded once (``salt.client.Caller`` and
    ``state.single`` build all of a minion's loaders again on every call,
    about 90 s each under TCG)."""

    def __init__(self, cachedir):
        self.timings = {}
        mark = time.monotonic()

        def step(name):
            nonlocal mark
            now = time.monotonic()
            self.timings[name] = round(now - mark, 2)
            mark = now

        import salt.config  # pylint: disable=import-outside-toplevel
        import salt.loader  # pylint: disable=import-outside-toplevel

        step("import")
        opts = salt.config.minion_config(None)
        opts.update(
            {
                "id": "vm-guest",
                "file_client": "local",
                "cachedir": cachedir,
                "pki_dir": os.path.join(cachedir, "pki"),
                "log_file": "/dev/null",
                "module_dirs": [os.path.join(REPO, "_modules")],
                "states_dirs": [os.path.join(REPO, "_states")],
                "beacons_dirs": [os.path.join(REPO, "_beacons")],
                "utils_dirs": [os.path.join(REPO, "_utils")],
                # A minion's own grains cache, in the cachedir the boots keep:
                # the second boot of the same guest reads what the first found.
                "grains_cache": True,
                "grains_cache_expiration": 3600,
            }
        )
        step("config")
        opts["grains"] = salt.loader.grains(opts)
        step("grains")
        self.context = {}
        utils = salt.loader.utils(opts, context=self.context)
        self.mods = salt.loader.minion_mods(opts, utils=utils, context=self.context)
        self.states = salt.loader.states(opts, self.mods, utils, salt.loader.serializers(opts), context=self.context)
        self.beacons = salt.loader.beacons(opts, self.mods, context=self.context)
        step("loaders")

    def fn(self, name, *args, **kwargs):
        return self.mods[name](*args, **kwargs)

    def state(self, fun, name, test=False, **kwargs):
        """One state function, as ``state.single`` would run it (``test`` in the loader's opts)."""
        self.states.opts["test"] = test
        try:
            ret = self.states[fun](name, **kwargs)
        finally:
            self.states.opts["test"] = False
        return {k: ret.get(k) for k in ("result", "comment", "changes")}


class Run:
    def __init__(self, out):
        self.out = out
        self.results = {"checks": {}, "errors": {}, "timings": {}, "kernel": os.uname().release}
        self.minion = None

    def check(self, name, func):
        start = time.monotonic()
        try:
            self.results["checks"][name] = func(self)
        except Exception:  # pylint: disable=broad-except
            self.results["errors"][name] = traceback.format_exc()
        self.results["timings"][name] = round(time.monotonic() - start, 2)
        self.save()

    def save(self):
        tmp = self.out + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.results, fh, indent=1, sort_keys=True, default=str)
        os.replace(tmp, self.out)


# ---------------------------------------------------------------------------
# Boot 1


def start_minion(run):
    run.minion = Minion(os.environ["CONNTRACK_VM_CACHEDIR"])
    run.results["minion_timings"] = run.minion.timings
    return {"loaded_at_start": "nf_conntrack" in modules(), "udevd": sh("pgrep", "-x", "systemd-udevd")["rc"] == 0}


def kernel_defaults(run):
    """A rule load autoloads nf_conntrack: the 6.1 kernel's own defaults, and the report functions."""
    rules = load_rules(CT_RULES)
    return {
        "rules": rules,
        "chain": chain_loaded(),
        "knobs": knobs(),
        "status": run.minion.fn("conntrack.status"),
        "recommend": run.minion.fn("conntrack.recommend"),
        "diagnose": run.minion.fn("conntrack.diagnose"),
        "unload_plan": run.minion.fn("conntrack_fw.unload_plan"),
        "mem_kib": int(read("/proc/meminfo").split()[1]),
        "probes": {
            p: os.path.exists(p) for p in ("/proc/slabinfo", "/proc/net/nf_conntrack", "/proc/net/stat/nf_conntrack")
        },
    }


def _loopback_flows(ns):
    """55 entries: 40 unanswered queries to udp/53 (a DNS flood), 5 ESTABLISHED
    TCP pairs (left open: the sockets are returned), 10 UDP flows to other ports."""
    ns.udp_queries(40)
    held = ns.tcp_pairs(5)
    ns.udp_flows(10, first_port=41000)
    return held


def netlink_module(run):
    """ctnetlink on a modular kernel: ``nf_conntrack_netlink`` is a module of its
    own, which the kernel loads on the first ctnetlink request. Counters and
    count against the proc files; status and the table walk on a root without
    ``proc/net`` (as on Ubuntu), so only ctnetlink can answer; ``conntrack.flush``
    removes exactly the flood, compared with ``conntrack -L``."""
    import tempfile  # pylint: disable=import-outside-toplevel

    sys.path.insert(0, REPO)
    from saltext_conntrack.runtime import kernel, netlink, snapshot, sources, table  # pylint: disable=import-outside-toplevel
    from tests.support.hostroot import build_procfs_less_root  # pylint: disable=import-outside-toplevel
    from tests.support.kernel import Netns  # pylint: disable=import-outside-toplevel

    out = {"loaded_before": "nf_conntrack_netlink" in modules()}
    with Netns("vmnl") as ns, tempfile.TemporaryDirectory() as tmp:
        held = _loopback_flows(ns)
        try:
            hidden = build_procfs_less_root(os.path.join(tmp, "hidden"))
            host = snapshot.Host(hidden, os.uname().release, 64, True)
            with ns.entered():
                sock = netlink.open_socket()
                try:
                    with open("/proc/thread-self/net/stat/nf_conntrack", "rb") as fh:
                        out["proc_stats"] = kernel.parse_stat(fh.read())
                    out["netlink_stats"] = netlink.cpu_stats(sock)
                    out["netlink_global"] = netlink.global_stats(sock)
                finally:
                    sock.close()
                out["loaded_after"] = "nf_conntrack_netlink" in modules()
                out["proc_count"] = int(read(f"{NF}/nf_conntrack_count"))
                # The core itself: the loader's modules keep the opts they were
                # loaded with, and this root is made after they were.
                out["status"] = snapshot.take(host, None, 0, time.time())
                with sources.Reader(host) as reader:
                    counted = table.read(hidden, "nf_conntrack", top=3, reader=reader)
                out["walk_source"] = counted.source
                out["netlink_summary"] = table.breakdown(counted, 3)
                out["proc_summary"] = table.breakdown(
                    table.walk("/proc/thread-self/net/nf_conntrack", "nf_conntrack", top=3), 3
                )
                out["table_before"] = sorted(ns.listed())
                out["flush_test"] = run.minion.fn("conntrack.flush", proto="udp", dport=53, unreplied=True, test=True)
                out["table_after_test"] = sorted(ns.listed())
                try:
                    run.minion.fn("conntrack.flush", proto="udp", dport=99999)
                    out["bad_filter"] = None
                except Exception as err:  # pylint: disable=broad-except
                    out["bad_filter"] = f"{type(err).__name__}: {err}"
                out["table_after_bad"] = sorted(ns.listed())
                out["flush"] = run.minion.fn("conntrack.flush", proto="udp", dport=53, unreplied=True)
                out["table_after"] = sorted(ns.listed())
        finally:
            for sock in held:
                sock.close()
    # Later checks unload nf_conntrack, which a loaded ctnetlink module holds.
    if not out["loaded_before"]:
        out["unload"] = sh("modprobe", "-r", "nf_conntrack_netlink")
    return out


def reload_without_state(run):
    """Values persisted as Salt's sysctl.present would (a sysctl.d file) are
    applied, then a firewall restart reloads the module: they are lost."""
    path = "/etc/sysctl.d/99-vmtest-plain.conf"
    with open(path, "w", encoding="ascii") as fh:
        fh.write("net.netfilter.nf_conntrack_max = 54321\nnet.netfilter.nf_conntrack_tcp_timeout_established = 3600\n")
    applied = sh("/usr/lib/systemd/systemd-sysctl", "--prefix=/net/netfilter")
    before = knobs()
    stop = firewall_stop()
    unloaded = knobs()
    rules = load_rules(CT_RULES)
    after = knobs()
    drift = run.minion.fn("conntrack.drift")
    os.unlink(path)
    return {"applied": applied, "before": before, "stop": stop, "unloaded": unloaded, "rules": rules,
            "after": after, "drift": drift}  # fmt: skip


def tuned(run):
    """conntrack.tuned with survive_reload (the default): test=True writes
    nothing, the real run writes the sysctl file, modprobe.d options, the udev
    rule and IPTABLES_SYSCTL_LOAD_LIST (an iptables-config made for the test)."""
    os.makedirs("/etc/sysconfig", exist_ok=True)
    with open("/etc/sysconfig/iptables-config", "w", encoding="ascii") as fh:
        fh.write('# made by the vm tier\nIPTABLES_MODULES_UNLOAD="yes"\n#IPTABLES_SYSCTL_LOAD_LIST=""\n')
    files = {
        "sysctl": "/etc/sysctl.d/90-conntrack.conf",
        "modprobe": "/etc/modprobe.d/conntrack.conf",
        "iptables_config": "/etc/sysconfig/iptables-config",
    }
    rules_dir = "/etc/udev/rules.d"
    udev_before = sorted(os.listdir(rules_dir)) if os.path.isdir(rules_dir) else []
    dry = run.minion.state("conntrack.tuned", "vm-size", test=True, **TUNED)
    after_dry = {k: read(p) for k, p in files.items()}
    udev_after_dry = sorted(os.listdir(rules_dir)) if os.path.isdir(rules_dir) else []
    real = run.minion.state("conntrack.tuned", "vm-size", **TUNED)
    udev = {n: read(os.path.join(rules_dir, n)) for n in sorted(os.listdir(rules_dir))}
    again = run.minion.state("conntrack.tuned", "vm-size", **TUNED)
    return {"dry": dry, "after_dry": after_dry, "udev_before": udev_before, "udev_after_dry": udev_after_dry,
            "real": real, "files": {k: read(p) for k, p in files.items()}, "udev": udev, "again": again,
            "knobs": knobs(), "drift": run.minion.fn("conntrack.drift")}  # fmt: skip


def reload_with_state(run):
    """The same firewall restart after conntrack.tuned: the values come back by themselves."""
    before = knobs()
    start = time.monotonic()
    stop = firewall_stop()
    unloaded = knobs()
    rules = load_rules(CT_RULES)
    reload_s = round(time.monotonic() - start, 2)
    return {"before": before, "stop": stop, "unloaded": unloaded, "rules": rules, "after": knobs(),
            "reload_seconds": reload_s, "drift": run.minion.fn("conntrack.drift")}  # fmt: skip


def reload_without_udev_rule(run):
    """Control: with the udev rule gone, the same reload gives hashsize (modprobe.d) but not max."""
    rules_dir = "/etc/udev/rules.d"
    saved = {}
    for name in os.listdir(rules_dir):
        text = read(os.path.join(rules_dir, name))
        if text and "nf_conntrack" in text:
            saved[name] = text
            os.unlink(os.path.join(rules_dir, name))
    sh("udevadm", "control", "--reload")
    firewall_stop()
    rules = load_rules(CT_RULES)
    after = knobs()
    for name, text in saved.items():
        with open(os.path.join(rules_dir, name), "w", encoding="utf-8") as fh:
            fh.write(text)
    sh("udevadm", "control", "--reload")
    sh("/usr/lib/systemd/systemd-sysctl", "--prefix=/net/netfilter")
    return {"removed": sorted(saved), "rules": rules, "after": after, "restored": knobs()}


# ---------------------------------------------------------------------------
# Boot 2 (same /etc, same cachedir)


def boot_order_sysctl_first(run):
    """A boot as Fedora 44 / AlmaLinux 9.8 order it (systemd/systemd#43362):
    systemd-modules-load and systemd-sysctl before anything loads
    nf_conntrack, then the firewall's rule load autoloads it."""
    loaded = "nf_conntrack" in modules()
    steps = [
        sh("udevadm", "control", "--reload"),
        sh("/usr/lib/systemd/systemd-modules-load"),
        sh("/usr/lib/systemd/systemd-sysctl"),
    ]
    before_rules = knobs()
    rules = load_rules(CT_RULES)
    return {"loaded_at_start": loaded, "steps": steps, "before_rules": before_rules, "rules": rules,
            "after": knobs(), "drift": run.minion.fn("conntrack.drift")}  # fmt: skip


def boot_order_module_first(run):
    """The other order: the module loaded first (modprobe), then systemd-sysctl."""
    firewall_stop()
    gone = knobs()
    steps = [sh("modprobe", "nf_conntrack"), sh("udevadm", "settle", "--timeout=30")]
    before_sysctl = knobs()
    steps.append(sh("/usr/lib/systemd/systemd-sysctl"))
    return {"gone": gone, "steps": steps, "before_sysctl": before_sysctl, "after": knobs(),
            "drift": run.minion.fn("conntrack.drift")}  # fmt: skip


def unload_refusals(run):
    """Real consumers: an nft ct rule (nft_ct), nft NAT (nf_nat), an iptables
    -m conntrack rule (xt_conntrack) and the FTP helper. conntrack.unloaded
    refuses while rules need conntrack; with force it still refuses before the
    first rmmod, since rules hold modules of the chain."""
    setup = [load_rules(CT_RULES), load_rules(NAT_RULES),
             sh("iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED", "-j", "ACCEPT"),
             sh("modprobe", "nf_conntrack_ftp")]  # fmt: skip
    before = modules()
    plan = run.minion.fn("conntrack_fw.unload_plan")
    refused = run.minion.state("conntrack.unloaded", "vm-unload")
    after_refused = modules()
    forced = run.minion.state("conntrack.unloaded", "vm-unload", force=True)
    after_forced = modules()
    return {"setup": setup, "plan": plan, "chain": chain_loaded(), "refused": refused, "forced": forced,
            "unchanged": before == after_refused == after_forced}  # fmt: skip


def unload(run):
    """Rules gone, modules still loaded: unloaded removes the chain, consumers first."""
    flush = sh("nft", "flush", "ruleset")
    before = chain_loaded()
    plan = run.minion.fn("conntrack_fw.unload_plan")
    dry = run.minion.state("conntrack.unloaded", "vm-unload", test=True)
    after_dry = chain_loaded()
    real = run.minion.state("conntrack.unloaded", "vm-unload")
    again = run.minion.state("conntrack.unloaded", "vm-unload")
    return {"flush": flush, "before": before, "plan": plan, "dry": dry, "after_dry": after_dry, "real": real,
            "after": chain_loaded(), "knobs": knobs(), "again": again}  # fmt: skip


def blacklist_explicit_load(run):
    """Each blacklist, a rule load, then an explicit ``modprobe nf_conntrack`` (soft lets it through, hard not)."""
    out = {}
    for label, kwargs in (
        ("soft_module_only", {"names": ["nf_conntrack"]}),
        ("soft_chain", {"names": ["nf_conntrack", "nft_ct", "xt_conntrack", "xt_state"]}),
        ("hard", {"names": ["nf_conntrack"], "hard": True}),
    ):
        state = run.minion.state("conntrack.blacklisted", "vm-blacklist", **kwargs)
        rules = load_rules(CT_RULES)
        explicit = sh("modprobe", "nf_conntrack")
        out[label] = {"state": state, "rules": rules, "explicit": explicit, "after": chain_loaded()}
        # back to nothing loaded and no blacklist, for the next case
        sh("nft", "flush", "ruleset")
        run.minion.state("conntrack.unloaded", "vm-unload")
        out[label]["cleared"] = run.minion.state("conntrack.not_blacklisted", "vm-blacklist", names=kwargs["names"])
        out[label]["left"] = chain_loaded()
    return out


def blacklist_rule_load_only(run):
    """Each blacklist, then only the rule load: is nf_conntrack loaded afterwards?"""
    out = {}
    for label, kwargs in (
        ("soft_module_only", {"names": ["nf_conntrack"]}),
        ("soft_chain", {"names": ["nf_conntrack", "nft_ct", "xt_conntrack", "xt_state"]}),
        ("hard", {"names": ["nf_conntrack"], "hard": True}),
    ):
        state = run.minion.state("conntrack.blacklisted", "vm-blacklist", **kwargs)
        rules = load_rules(CT_RULES)
        out[label] = {"state": state, "file": read(BLACKLIST), "rules": rules, "chain": chain_loaded()}
        sh("nft", "flush", "ruleset")
        run.minion.state("conntrack.unloaded", "vm-unload")
        out[label]["cleared"] = run.minion.state("conntrack.not_blacklisted", "vm-blacklist", names=kwargs["names"])
    rules = load_rules(CT_RULES)
    out["not_blacklisted"] = {"rules": rules, "chain": chain_loaded(), "knobs": knobs()}
    return out


def beacon_remediate(run):
    """A namespace's table really fills (global max 20, UDP flows on its
    loopback, an nft ``ct state new`` rule): the beacon reads the guest
    kernel's own table-full line from /dev/kmsg, then
    ``conntrack_remediate.remediate`` (what the reactor's SLS calls) confirms it
    from the counters and raises the limit."""
    sys.path.insert(0, REPO)
    from tests.support.kernel import Netns  # pylint: disable=import-outside-toplevel

    config = [{"source": "kmsg"}, {"min_interval": 0}, {"status_interval": 0}, {"persist": False}]
    beacon = run.minion.beacons["conntrack.beacon"]
    # The module loaded (and the udev rule's systemd-sysctl done) before the
    # limit is lowered: a late udev run would put the tuned max back.
    out = {"rules": load_rules(CT_RULES), "before": knobs()}
    with Netns("vm") as ns:
        sh("udevadm", "settle", "--timeout=30")
        out["accepted"] = ns.udp_flows(20, first_port=40000)
        with ns.entered():
            out["first_run"] = beacon(config)  # starts at the end of kmsg
        with open(f"{NF}/nf_conntrack_max", "w", encoding="ascii") as fh:
            fh.write("20\n")
        runs, port = [], 41000
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            refused = 3 - ns.udp_flows(3, first_port=port)
            port += 3
            with ns.entered():
                ret = beacon(config)
            runs.append({"refused": refused, "events": ret})
            if any(e.get("tag") == "table_full" for e in ret):
                break
            time.sleep(0.5)
        out["runs"] = runs
        out["dmesg"] = [line for line in sh("dmesg")["out"].splitlines() if "table full" in line][-5:]
        out["full_max"] = knobs()["max"]
        with ns.entered():
            out["diagnose"] = run.minion.fn("conntrack.diagnose")
        out["remediate"] = run.minion.fn("conntrack_remediate.remediate", fire_event=False)
        out["after"] = knobs()
        out["accepted_after"] = ns.udp_flows(5, first_port=50000)
        out["persisted"] = read("/etc/sysctl.d/90-conntrack.conf")
    return out


PHASES = {
    "boot1": [start_minion, kernel_defaults, netlink_module, reload_without_state, tuned, reload_with_state, reload_without_udev_rule],
    "boot2": [start_minion, boot_order_sysctl_first, boot_order_module_first, unload_refusals, unload,
              blacklist_rule_load_only, blacklist_explicit_load, beacon_remediate],
}  # fmt: skip


def main(phase, out):
    run = Run(out)
    run.results["phase"] = phase
    run.results["started"] = time.time()
    run.results["uptime_at_start"] = float(read("/proc/uptime").split()[0])
    for func in PHASES[phase]:
        run.check(func.__name__, func)
    run.results["uptime_at_end"] = float(read("/proc/uptime").split()[0])
    run.results["done"] = True
    run.save()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
