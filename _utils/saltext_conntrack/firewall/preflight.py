"""Before flows are exempted from tracking: would the host's own rules drop them once untracked?

An untracked packet is in no ``ct state`` but ``untracked``: a chain whose
policy is drop and whose only accept for the flow is ``ct state
established,related`` (or ``-m state --state ESTABLISHED,RELATED``) drops every
reply once the flow is exempt, and a NAT rule never sees an untracked packet.
The real ruleset is read (``nft list ruleset``, ``iptables-save``,
``ip6tables-save``) and each filter base chain is walked twice for every
exempted port, in both directions: once as the tracked packet (``new``,
``established``), once as the untracked one. A chain that accepts the tracked
packet but drops the untracked one is named, with the rule that decides.

Only matches read here count (ct state, protocol, port); a rule with any other
match (an address, an interface) is passed over on both walks, so it can
neither hide a drop nor invent one. Jumps and gotos into the table's own
chains are followed (ufw and firewalld keep every accept there), with
``return`` and fall-through as the kernel has them, at most ``DEPTH`` deep;
a jump to a chain not in the ruleset (``-j LOG``) is passed over.
"""

import re

from saltext_conntrack.common import commands
from saltext_conntrack.firewall import iptables_save

TRACKED = ("new", "established")
DEPTH = 16  # the kernel allows more; real rulesets (ufw: 3) nest far less
_XT_TABLES = {f"{family} {table}" for family in ("ip", "ip6") for table in ("filter", "nat")}
_HOOK = re.compile(r"type (filter|nat) hook (\w+) priority [^;]+;(?: policy (accept|drop);)?")
_NFT_VERDICT = re.compile(r"(?:^|\s)(accept|drop|reject(?: with .*)?|return|(?:jump|goto) [\w.-]+)$")
_NAT_VERDICT = re.compile(r"(?:^|\s)(masquerade|snat|dnat|redirect)(?:\s|$)")
_PORTS = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")


def _ports_match(spec, port):
    """``spec`` (``53``, ``80-90``, ``{ 22, 80-90 }``, ``53,54``, ``1000:2000``) holds ``port``; None if unread."""
    items = [i for i in re.split(r"[\s,{}]+", spec.replace(":", "-")) if i]
    found = False
    for item in items:
        match = _PORTS.match(item)
        if not match:
            return None
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        found = found or low <= port <= high
    return found


def _states(spec):
    return {s.strip().lower() for s in spec.replace("{", "").replace("}", "").split(",") if s.strip()}


# -- nft ----------------------------------------------------------------------


def nft_chains(text):
    """``[{table, chain, kind, hook, policy, rules, others}]`` of the base chains in ``nft list ruleset``;
    ``others`` maps the table's other chains to their rules, for jumps."""
    chains, every, table, chain = [], {}, None, None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("table "):
            table, chain = " ".join(line.split()[1:3]), None
            every.setdefault(table, {})
        elif line.startswith("chain ") and table:
            chain = {"table": table, "chain": line.split()[1], "kind": None, "rules": []}
            every[table][chain["chain"]] = chain["rules"]
        elif chain is not None and _HOOK.match(line):
            kind, hook, policy = _HOOK.match(line).groups()
            chain.update(kind=kind, hook=hook, policy=policy or "accept")
            chains.append(chain)
        elif chain is not None and line == "}":
            chain = None
        elif chain is not None and line and not line.startswith(("type ", "policy ", "comment ")):
            chain["rules"].append(re.sub(r"\s+# handle \d+$", "", line))
    for chain in chains:
        chain["others"] = {name: rules for name, rules in every[chain["table"]].items() if rules is not chain["rules"]}
    return chains


def _nft_rule(rule, proto, way, port, state):
    """``(verdict, understood and matching)`` of one nft rule for the packet."""
    rest = re.sub(r"\s+counter(?: packets \d+ bytes \d+)?", "", rule)
    verdict = _NFT_VERDICT.search(rest)
    if not verdict:
        return None, False
    rest = rest[: verdict.start()].strip()
    ok = True
    for pattern in (r"ct state (!= )?(\{[^}]*\}|\S+)", r"(tcp|udp|sctp|udplite) (dport|sport) (!= )?(\{[^}]*\}|\S+)",
                    r"meta l4proto (\{[^}]*\}|\S+)"):  # fmt: skip
        match = re.search(pattern, rest)
        if not match:
            continue
        rest = (rest[: match.start()] + rest[match.end() :]).strip()
        if pattern.startswith("ct"):
            ok = ok and ((state in _states(match.group(2))) != bool(match.group(1)))
        elif pattern.startswith("meta"):
            ok = ok and proto in _states(match.group(1))
        else:
            hit = _ports_match(match.group(4), port)
            if hit is None:
                return None, False
            ok = ok and match.group(1) == proto and match.group(2) == way and hit != bool(match.group(3))
    if rest:
        return None, False  # another match: passed over on both walks
    word = verdict.group(1).split()
    return (f"{word[0]}:{word[1]}" if word[0] in ("jump", "goto") else word[0]), ok


def _walk(chain, rule_fn, proto, way, port, state):
    """``(verdict, what decided)`` of a walk of ``chain``'s rules for the packet."""
    decided = _walk_rules(chain["rules"], chain.get("others", {}), rule_fn, (proto, way, port, state), DEPTH)
    return decided or (chain["policy"], f"policy {chain['policy']}")


def _walk_rules(rules, others, rule_fn, packet, depth, name=None):
    """``(verdict, rule)`` where ``rules`` decide the packet; None where it falls through or returns."""
    for rule in rules:
        verdict, hit = rule_fn(rule, *packet)
        if not (hit and verdict):
            continue
        if verdict == "return":
            return None
        kind, _, target = verdict.partition(":")
        if not target:
            shown = rule if name is None or rule.startswith("-A ") else f"chain {name}: {rule}"
            return ("accept" if verdict == "accept" else "drop"), shown
        if target not in others or depth == 0:
            continue  # a chain not in the ruleset (a target such as LOG), or too deep: passed over
        decided = _walk_rules(others[target], others, rule_fn, packet, depth - 1, target)
        if decided or kind == "goto":
            # A goto's chain that falls through returns past this chain, to its caller.
            return decided
    return None


def nft_nat(chain, proto, port):
    """The first NAT rule of a nat chain that can cover the flow (no port match, or a matching one)."""
    for rule in chain["rules"]:
        if not _NAT_VERDICT.search(rule):
            continue
        ports = re.search(r"(tcp|udp|sctp|udplite) (dport|sport) (\{[^}]*\}|\S+)", rule)
        if ports is None or (ports.group(1) == proto and _ports_match(ports.group(3), port)):
            return rule
    return None


# -- iptables -----------------------------------------------------------------


def ipt_chains(text, cmd):
    """Base chains of the filter and nat tables of ``iptables-save`` output, shaped as :func:`nft_chains`."""
    parsed = iptables_save.parse(text)
    chains, others = {}, {}
    for line in parsed:
        if line["kind"] == "chain" and line["policy"] in ("ACCEPT", "DROP") and line["table"] in ("filter", "nat"):
            kind = "filter" if line["table"] == "filter" else "nat"
            chains[(line["table"], line["chain"])] = {"table": f"{cmd} {line['table']}", "chain": line["chain"],
                                                      "kind": kind, "hook": line["chain"].lower(),
                                                      "policy": line["policy"].lower(), "rules": []}  # fmt: skip
    for line in parsed:
        key = (line["table"], line.get("chain"))
        if line["kind"] == "rule" and key in chains:
            chains[key]["rules"].append(line["text"])
        elif line["kind"] == "rule":
            others.setdefault(line["table"], {}).setdefault(line["chain"], []).append(line["text"])
    for (table, _), chain in chains.items():
        chain["others"] = others.get(table, {})
    return list(chains.values())


def _ipt_rule(rule, proto, way, port, state):
    words = iptables_save.tokens(rule)[2:]
    verdict, ok, i = None, True, 0
    while i < len(words):
        word, neg = words[i], False
        if word == "!":
            neg, i = True, i + 1
            word = words[i] if i < len(words) else ""
        arg = words[i + 1] if i + 1 < len(words) else ""
        if word in ("-j", "-g"):
            verdict = {"ACCEPT": "accept", "DROP": "drop", "REJECT": "reject", "RETURN": "return"}.get(arg)
            verdict = verdict or f"{'jump' if word == '-j' else 'goto'}:{arg}"
        elif word == "-m" and arg in ("state", "conntrack", "multiport", proto, "tcp", "udp", "sctp", "udplite"):
            pass
        elif word in ("--state", "--ctstate"):
            ok = ok and ((state in _states(arg)) != neg)
        elif word == "-p":
            ok = ok and ((arg == proto) != neg)
        elif word in ("--dport", "--sport", "--dports", "--sports", "--destination-port", "--source-port"):
            hit = _ports_match(arg, port)
            if hit is None:
                return None, False
            ok = ok and ("sport" if "s" in word[2:4] else "dport") == way and hit != neg
        else:
            return None, False  # a match not read here: passed over
        i += 2
    return verdict, ok


def ipt_nat(chain, proto, port):
    for rule in chain["rules"]:
        target = iptables_save.target(rule)
        if target not in ("MASQUERADE", "SNAT", "DNAT", "REDIRECT"):
            continue
        words = iptables_save.tokens(rule)
        given_proto = words[words.index("-p") + 1] if "-p" in words[:-1] else None
        ports = [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("--dport", "--sport", "--dports")]
        if given_proto not in (None, proto):
            continue
        if not ports or any(_ports_match(p, port) for p in ports):
            return rule
    return None


# -- the check ----------------------------------------------------------------


def read_rulesets():
    """``[(source, chains, rule reader, nat reader)]`` of every ruleset this host shows."""
    out, xtables = [], False
    for cmd in ("iptables-save", "ip6tables-save"):
        if commands.which(cmd):
            proc = commands.run([cmd], check=False)
            if proc.returncode == 0:
                xtables = xtables or "(nf_tables)" in proc.stdout
                out.append((cmd, ipt_chains(proc.stdout, cmd.replace("-save", "")), _ipt_rule, ipt_nat))
    if commands.which("nft"):
        proc = commands.run(["nft", "list", "ruleset"], check=False)
        if proc.returncode == 0:
            chains = nft_chains(proc.stdout)
            if xtables:  # iptables-nft's own tables: read (and changed) through iptables, not twice
                chains = [c for c in chains if c["table"] not in _XT_TABLES]
            out.append(("nft", chains, _nft_rule, nft_nat))
    return out


def breaks(pairs, rulesets):
    """``[{source, table, chain, hook, proto, port, way, rule, accepted_by, nat}]``: where an exempted
    flow would be dropped (or would miss its NAT) once untracked."""
    found = []
    for source, chains, rule_fn, nat_fn in rulesets:
        for chain in chains:
            for proto, port in pairs:
                base = {"source": source, "table": chain["table"], "chain": chain["chain"], "hook": chain["hook"],
                        "proto": proto, "port": port}  # fmt: skip
                if chain["kind"] == "nat":
                    rule = nat_fn(chain, proto, port)
                    if rule:
                        found.append({**base, "way": "both", "rule": rule, "accepted_by": None, "nat": True})
                    continue
                for way in ("dport", "sport"):
                    verdict, rule = _walk(chain, rule_fn, proto, way, port, "untracked")
                    if verdict == "accept":
                        continue
                    for state in TRACKED:
                        tracked, by = _walk(chain, rule_fn, proto, way, port, state)
                        if tracked == "accept":
                            found.append({**base, "way": way, "rule": rule, "accepted_by": by, "nat": False})
                            break
    return found


def sentence(item):
    """One finding in words, naming the rule."""
    where = f"{item['source']}: {item['table']} chain {item['chain']} ({item['hook']})"
    flow = f"{item['proto']} {item['way']} {item['port']}"
    if item["nat"]:
        return (
            f"{where}: NAT rule '{item['rule']}' covers {item['proto']}/{item['port']}, and untracked packets skip NAT"
        )
    return (
        f"{where}: untracked {flow} would meet '{item['rule']}'; today they pass only as tracked packets, "
        f"through '{item['accepted_by']}'"
    )


def accept_rules(found):
    """``[(change key, change, command, stdin)]`` putting ``ct state untracked`` accepts first in each
    chain that would drop the exempted flows; NAT findings have none."""
    out, seen = [], set()
    for item in found:
        key = (item["source"], item["table"], item["chain"], item["proto"], item["way"], item["port"])
        if item["nat"] or key in seen:
            continue
        seen.add(key)
        proto, way, port = item["proto"], item["way"], item["port"]
        if item["source"] == "nft":
            rule = f"{proto} {way} {port} ct state untracked accept"
            cmd, stdin = ["nft", "-f", "-"], f"insert rule {item['table']} {item['chain']} {rule}\n"
        else:
            rule = f"-p {proto} -m {proto} --{way} {port} -m conntrack --ctstate UNTRACKED -j ACCEPT"
            cmd = [f"{item['source'].split()[0].replace('-save', '')}-restore", "--noflush"]
            stdin = f"*filter\n-I {item['chain']} 1 {rule}\nCOMMIT\n"
        change = {"old": None, "new": rule}
        out.append((f"{item['source']} {item['table']} {item['chain']} untracked accept {proto} {way} {port}",
                    change, cmd, stdin))  # fmt: skip
    return out
