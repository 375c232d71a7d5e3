"""The plan that takes state and conntrack matches out of a saved iptables rules
file, without cutting the host off from traffic it gets now."""

import os
import re

from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.common import commands, numbers
from saltext_conntrack.firewall import iptables_save
from saltext_conntrack.persistence import plans

STATELESS_MARK = "# conntrack.stateless: "
# What makes a saved iptables rule need connection state.
STATEFUL = re.compile(r"(^|\s)(-m\s+(state|conntrack)|--state|--ctstate|--ctstatus)(\s|$)")
_STATE_MATCH = re.compile(r"\s+-m\s+(state|conntrack)(?=\s|$)")
_NEW_ONLY = re.compile(r"\s+--(ct)?state\s+NEW(?=\s|$)")


def new_only_stripped(rule):
    """The rule without its state match when its only conntrack condition is
    ``--state NEW``/``--ctstate NEW`` on an ACCEPT rule, else None."""
    tokens = iptables_save.tokens(rule)
    if iptables_save.target(rule) != "ACCEPT":
        return None
    state_mods = [i for i, t in enumerate(tokens[:-1]) if t == "-m" and tokens[i + 1] in ("state", "conntrack")]
    options = [t for t in tokens if t.startswith("--ct") or t == "--state"]
    if len(state_mods) != 1 or options not in (["--state"], ["--ctstate"]):
        return None
    i = tokens.index(options[0])
    if i + 1 >= len(tokens) or tokens[i + 1] != "NEW" or (i > 0 and tokens[i - 1] == "!"):
        return None
    if (tokens[state_mods[0] + 1] == "state") != (options[0] == "--state"):
        return None
    stripped = _NEW_ONLY.sub("", _STATE_MATCH.sub("", rule, count=1), count=1)
    expected = [t for j, t in enumerate(tokens) if j not in (state_mods[0], state_mods[0] + 1, i, i + 1)]
    if iptables_save.tokens(stripped) != expected:
        return None
    return stripped


def _rewrite(text, mode):
    """``(new text, changes, ACCEPT rules taken out of a chain that drops the rest)``."""
    parsed = iptables_save.parse(text)
    policy, last = iptables_save.policies(parsed), iptables_save.last_rules(parsed)
    out, changes, lockout = [], {}, []
    for line in parsed:
        bare, raw = line["text"], line["raw"]
        if line["kind"] != "rule" or not STATEFUL.search(raw.rstrip("\n")):
            out.append(raw)
            continue
        stripped = new_only_stripped(bare)
        if stripped is not None:
            changes[f"line {line['number']}"] = {"old": bare, "new": stripped}
            out.append(plans.same_end(stripped, raw))
            continue
        where = (line["table"], line["chain"])
        closing = iptables_save.target(last.get(where, "")) in ("DROP", "REJECT")
        if iptables_save.target(bare) == "ACCEPT" and (policy.get(where) == "DROP" or closing):
            lockout.append(f"line {line['number']}: {bare}")
        new = None if mode == "remove" else STATELESS_MARK + bare
        changes[f"line {line['number']}"] = {"old": bare, "new": new}
        if new is not None:
            out.append(plans.same_end(new, raw))
    return "".join(out), changes, lockout


def _restore_test(path, text):
    """``ip(6)tables-restore --test`` on ``text``; the command used, or None where
    there is none. Raises when it rejects the text."""
    cmd = "ip6tables-restore" if "6" in os.path.basename(path) else "iptables-restore"
    if not commands.which(cmd):
        return None
    proc = commands.run([cmd, "--test"], stdin=text, check=False)
    if proc.returncode != 0:
        raise CommandExecutionError(
            f"{cmd} --test rejects the rewritten {path}, so it was left as it was: "
            f"{(proc.stderr or proc.stdout).strip()[:2000]}"
        )
    return cmd


def plan(root, path, mode="comment", force=False):
    """The rewrite of a saved rules file; refuses a lockout unless ``force``, and
    a result ``iptables-restore --test`` rejects. Adds ``checked_with``."""
    if mode not in ("comment", "remove"):
        raise SaltInvocationError(f"mode must be comment or remove, got {numbers.shown(mode)}")
    force = numbers.boolean(force, "force")
    real, text, exists = plans.read(root, path, "saved rules")
    if not exists:
        raise CommandExecutionError(f"no saved rules file at {real}")
    new, changes, lockout = _rewrite(text, mode)
    if lockout and not force:
        raise CommandExecutionError(
            f"{path}: taking out {'; '.join(lockout)} removes an ACCEPT from a chain that "
            "drops what it does not accept, so after the next restore the host would lose "
            "traffic those rules let in (e.g. replies to its own connections, or SSH). "
            "Add stateless rules for that traffic first, or pass force=True"
        )
    one = plans.plan(path, real, text, new, exists, changes)
    one["checked_with"] = _restore_test(path, new) if one["changes"] else None
    return one
