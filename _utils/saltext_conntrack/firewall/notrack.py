"""Flows exempt from connection tracking: one renderer for the live rules and
the persisted file, the names of the managed table and chain, and the readers
of what is loaded now."""

import re

from salt.exceptions import SaltInvocationError

from saltext_conntrack.common import commands, numbers
from saltext_conntrack.firewall import iptables_save
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
            raise SaltInvocationError(f"proto must be one of {', '.join(PROTOS)}, got {proto!r}"[:200])
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
        raise SaltInvocationError(f"backend must be nft or iptables, got {value!r}"[:200])
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
        raise SaltInvocationError(f"only an nft file can be included, got {include!r}"[:300])
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
