"""Flows exempt from connection tracking: one renderer for the live rules and
the persisted file, the names of the managed table and chain, and the readers
of what is loaded now; the plan (live and at boot) and its apply."""

import re
from typing import TypedDict

from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.common import commands, numbers, paths
from saltext_conntrack.firewall import iptables_save, preflight
from saltext_conntrack.persistence import plans

TABLE = "conntrack_notrack"
CHAIN = "CONNTRACK_NOTRACK"
PROTOS = ("tcp", "udp", "sctp", "udplite")
DEFAULT_FILES = {"nft": "/etc/nftables.d/conntrack-notrack.nft", "iptables": "/etc/iptables/conntrack-notrack.rules"}
MAX_PORTS = 256


def flows(value):
    """``[(proto, port), ...]`` from ``[{proto, port|ports}]`` (or one mapping)."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise SaltInvocationError(
            f"flows must be a non-empty list of {{proto, port(s)}}, got {numbers.shown(value, 300)}"
        )
    out = []
    for flow in value:
        if not isinstance(flow, dict) or set(flow) - {"proto", "port", "ports"}:
            raise SaltInvocationError(
                f"a flow is a mapping with proto and port or ports, got {numbers.shown(flow, 300)}"
            )
        proto = flow.get("proto", "tcp")
        if proto not in PROTOS:
            raise SaltInvocationError(f"proto must be one of {', '.join(PROTOS)}, got {numbers.shown(proto)}")
        ports = flow.get("ports", [])
        ports = [ports] if not isinstance(ports, (list, tuple)) else list(ports)
        if "port" in flow:
            ports.insert(0, flow["port"])
        if not ports:
            raise SaltInvocationError(f"flow {numbers.shown(flow, 300)} names no port")
        if len(ports) + len(out) > 2 * MAX_PORTS:  # refuse before the work, not after
            raise SaltInvocationError(f"flows: at most {MAX_PORTS} ports are accepted")
        for port in ports:
            pair = (proto, numbers.integer(port, "port", 1, 65535))
            if pair not in out:
                out.append(pair)
            if len(out) > MAX_PORTS:
                raise SaltInvocationError(f"flows: at most {MAX_PORTS} ports are accepted")
    return out


def backend_name(value):
    if value not in ("nft", "iptables"):
        raise SaltInvocationError(f"backend must be nft or iptables, got {numbers.shown(value)}")
    return value


def rules(value, backend="nft"):
    pairs = flows(value)
    if backend_name(backend) == "nft":
        return [f"{proto} {way} {port} notrack" for proto, port in pairs for way in ("dport", "sport")]
    return [
        f"-A {CHAIN} -p {proto} -m {proto} --{way} {port} -j CT --notrack"
        for proto, port in pairs
        for way in ("dport", "sport")
    ]


def script(value, backend="nft"):
    """``nft -f`` input, or ``iptables-restore --noflush`` input, replacing the managed table or chain."""
    body = rules(value, backend)
    if backend == "nft":
        lines = "".join(f"\t\t{rule}\n" for rule in body)
        return (
            f"# Managed by Salt (saltext-conntrack): flows exempt from connection tracking\n"
            f"table inet {TABLE}\n"
            f"delete table inet {TABLE}\n"
            f"table inet {TABLE} {{\n"
            f"\tchain prerouting {{\n\t\ttype filter hook prerouting priority -300; policy accept;\n{lines}\t}}\n"
            f"\tchain output {{\n\t\ttype filter hook output priority -300; policy accept;\n{lines}\t}}\n"
            f"}}\n"
        )
    return (
        "# Managed by Salt (saltext-conntrack): load with iptables-restore --noflush\n"
        f"*raw\n:{CHAIN} - [0:0]\n-F {CHAIN}\n" + "".join(f"{rule}\n" for rule in body) + "COMMIT\n"
    )


def file_plan(root, value, backend="nft", path=None):
    """The persisted script for ``flows`` in ``path`` (default per backend); the file holds only it."""
    text = script(value, backend)
    path = DEFAULT_FILES[backend] if path is None else path
    plans.allowed(path, "notrack")
    suffix = ".nft" if backend == "nft" else ".rules"
    if not path.endswith(suffix):
        raise SaltInvocationError(f"the {backend} notrack file must end in {suffix}, got {numbers.shown(path)}")
    real, old, exists = plans.read(root, path, "notrack")
    return plans.plan(path, real, old, text, exists, {path: {"old": old or None, "new": text}})


def include_plans(root, include, path=None):
    """Plans keeping ``include "INCLUDE"`` as the last rule line of each nftables
    config (``path``, or each of them that exists); none is created."""
    plans.allowed(include, "notrack")
    if not include.endswith(".nft"):
        raise SaltInvocationError(f"only an nft file can be included, got {numbers.shown(include)}")
    line = f'include "{include}"'
    out = []
    for conf in plans.ALLOWED["nftables main"] if path is None else [path]:
        real, text, exists = plans.read(root, conf, "nftables main")
        if not exists:
            continue
        held = plans.lines(text)
        content = [i for i, one in enumerate(held) if one.strip() and not one.lstrip().startswith("#")]
        if content and held[content[-1]].strip() == line and sum(held[i].strip() == line for i in content) == 1:
            out.append(plans.plan(conf, real, text, text, exists, {}))
            continue
        keep = [one for one in held if one.strip() != line]
        change = {"old": None if len(keep) == len(held) else "not last", "new": line}
        out.append(plans.plan(conf, real, text, plans.joined(keep + [line + "\n"]), exists, {conf: change}))
    return out


def nft_loaded():
    """``{chain: [rule, ...]}`` of the managed nft table, or None when it does not exist."""
    proc = commands.run(["nft", "list", "table", "inet", TABLE], check=False)
    if proc.returncode != 0:
        return None
    chains, chain = {}, None
    for line in proc.stdout.splitlines():
        line = line.strip()
        match = re.match(r"chain (\S+) \{", line)
        if match:
            chain = chains.setdefault(match.group(1), [])
        elif chain is not None and line and line != "}" and not line.startswith("type "):
            chain.append(line)
    return chains


def iptables_loaded(save_cmd):
    """``{rules, jumps}`` of the managed raw chain as ``save_cmd`` shows it, or None."""
    proc = commands.run([save_cmd, "-t", "raw"], check=False)
    if proc.returncode != 0:
        return None
    found, jumps = [], []
    for line in iptables_save.rules(proc.stdout, "raw"):
        if line["chain"] == CHAIN:
            found.append(line["text"])
        elif line["chain"] in ("PREROUTING", "OUTPUT") and line["text"] == f"-A {line['chain']} -j {CHAIN}":
            jumps.append(line["chain"])
    return {"rules": found, "jumps": sorted(jumps)}


class NotrackPlan(TypedDict):
    """A checked notrack request: the live loads and file writes, what they change, what boot loads."""

    backend: str
    live: list
    files: list
    changes: dict
    boot: str | None


def host_backend():
    """``iptables`` when ``iptables-save`` shows rules, else ``nft`` where nft is installed, else ``iptables``."""
    if commands.which("iptables-save"):
        proc = commands.run(["iptables-save"], check=False)
        if proc.returncode == 0 and iptables_save.rules(proc.stdout):
            return "iptables"
    if commands.which("nft"):
        return "nft"
    if commands.which("iptables-restore"):
        return "iptables"
    raise CommandExecutionError("neither nft nor iptables is installed: cannot exempt flows")


def _live_plan(value, chosen):
    """``[(change key, change, command, stdin)]``: what loading ``value`` live would change."""
    body, text = rules(value, chosen), script(value, chosen)
    if chosen == "nft":
        current, wanted = nft_loaded(), {"prerouting": body, "output": body}
        if current == wanted:
            return []
        return [(f"nft table inet {TABLE}", {"old": current, "new": wanted}, ["nft", "-f", "-"], text)]
    out = []
    for cmd in ("iptables", "ip6tables"):
        if not commands.which(f"{cmd}-restore"):
            continue
        current = iptables_loaded(f"{cmd}-save")
        wanted = {"rules": body, "jumps": ["OUTPUT", "PREROUTING"]}
        if current == wanted:
            continue
        stdin = text.replace("COMMIT\n", "")
        have = (current or {}).get("jumps", [])
        for hook in ("PREROUTING", "OUTPUT"):
            if hook not in have:
                stdin += f"-I {hook} -j {CHAIN}\n"
            # one jump per hook: duplicates (from an earlier run or by hand) go
            stdin += f"-D {hook} -j {CHAIN}\n" * max(0, have.count(hook) - 1)
        key = f"{cmd} raw {CHAIN}"
        out.append((key, {"old": current, "new": wanted}, [f"{cmd}-restore", "--noflush"], stdin + "COMMIT\n"))
    return out


def _boot_note(chosen, path, configs):
    """What boot will load of the persisted file, in a sentence."""
    if chosen == "nft" and path.endswith(".nft"):
        if configs:
            return (
                f"At boot the nftables service loads {path} through the include at the end of {' and '.join(configs)}"
            )
        return (
            f"At boot nothing loads {path}: there is no /etc/nftables.conf or "
            f"/etc/sysconfig/nftables.conf; add 'include \"{path}\"' to the config your firewall loads"
        )
    if chosen == "nft":
        return f"At boot nothing loads {path} (not an .nft file the nftables config can include)"
    return (
        f"At boot nothing loads {path}: netfilter-persistent loads /etc/iptables/rules.v4/v6 and "
        f"the iptables service /etc/sysconfig/iptables, not this file. Load it after the firewall "
        f"with 'iptables-restore --noflush < {path}' and 'ip6tables-restore --noflush < {path}' "
        "(e.g. a systemd oneshot unit)"
    )


def _persist_plans(root, value, chosen, persist_to):
    """The notrack file plan and, for an nft file, the plans of the configs that include it."""
    if persist_to is False or persist_to is None:
        return []
    if persist_to is not True:
        numbers.text(persist_to, "persist", paths.PATH_MAX)
    one = file_plan(root, value, chosen, None if persist_to is True else persist_to)
    if chosen == "nft" and one["path"].endswith(".nft"):
        return [one, *include_plans(root, one["path"])]
    return [one]


def _preflight(pairs, accept_untracked, rulesets=None):
    """The ``ct state untracked`` accepts to load first, or CommandExecutionError naming the rules that
    would drop the exempted flows (always for NAT; without ``accept_untracked`` for drops)."""
    found = preflight.breaks(pairs, preflight.read_rulesets() if rulesets is None else rulesets)
    nat = [f for f in found if f["nat"]]
    if nat or (found and not accept_untracked):
        said = "; ".join(preflight.sentence(f) for f in (nat or found))
        hint = (
            ""
            if nat
            else (
                " Set accept_untracked: true to add 'ct state untracked' accepts for these ports first, "
                "in the same change"
            )
        )
        raise CommandExecutionError(f"refused: exempting these flows would cut them off. {said}.{hint}")
    return preflight.accept_rules(found)


def plan(root, value, backend=None, persist=None, accept_untracked=False, rulesets=None) -> NotrackPlan:
    """Plan exempting ``value`` (flows) live through ``backend`` (default: :func:`host_backend`)
    and, with ``persist`` (``True``, a path or nothing), at boot: every check, nothing changed.

    The host's rules are read first (``rulesets``: what :func:`preflight.read_rulesets` returns):
    where they would drop the untracked flows, refused, or with ``accept_untracked`` the plan loads
    the ``ct state untracked`` accepts before the exemption."""
    pairs = flows(value)
    if backend is not None:
        backend_name(backend)
    if persist is not None and not isinstance(persist, (bool, str)):
        raise SaltInvocationError(f"persist must be true, false or a path, got {numbers.shown(persist)}")
    accept_untracked = numbers.boolean(accept_untracked, "accept_untracked")
    chosen = backend or host_backend()
    files = _persist_plans(root, value, chosen, persist)
    live = _preflight(pairs, accept_untracked, rulesets) + _live_plan(value, chosen)
    changes = {key: change for key, change, _, _ in live}
    for one in files:
        changes.update(one["changes"])
    boot = _boot_note(chosen, files[0]["path"], [p["path"] for p in files[1:]]) if files else None
    return {"backend": chosen, "live": live, "files": files, "changes": changes, "boot": boot}


def apply(root, notrack: NotrackPlan):
    """Load the live rules, then write the planned files."""
    for _, _, cmd, stdin in notrack["live"]:
        commands.run(cmd, stdin=stdin)
    for one in notrack["files"]:
        plans.apply(root, one)


def apply_includes(root, configs, test):
    """``{changes, written, configs}`` of :func:`include_plans`'s ``configs``, written unless ``test``."""
    ret = {"changes": {}, "written": [], "configs": [p["path"] for p in configs]}
    for one in configs:
        ret["changes"].update(one["changes"])
        if not test and plans.apply(root, one):
            ret["written"].append(one["path"])
    return ret
