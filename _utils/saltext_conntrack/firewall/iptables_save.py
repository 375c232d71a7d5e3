"""The one reader of the iptables-save format (live ``iptables-save`` output and
saved rules files alike): tables, chain policies and rules, line by line.

``conntrack.dependents``, ``stateless`` and ``notrack`` all read rules
through :py:func:`parse`, so a table header or a chain line means the same
thing to each of them.
"""

import re
import shlex

_CHAIN_LINE = re.compile(r"^:(\S+)\s+(\S+)")
_TARGET = re.compile(r"(?:^|\s)-j\s+(\S+)")


def parse(text):
    """Every line of ``text`` as a dict: ``number`` (1-based), ``raw`` (with its
    newline), ``text`` (stripped), ``kind`` (``table``, ``chain``, ``rule`` or
    ``other``), ``table`` and, for chain and rule lines, ``chain``; chain lines
    carry ``policy``."""
    out, table = [], None
    for number, raw in enumerate(text.splitlines(keepends=True), 1):
        bare = raw.strip()
        line = {"number": number, "raw": raw, "text": bare, "kind": "other", "table": table}
        if bare.startswith("*"):
            table = line["table"] = bare[1:]
            line["kind"] = "table"
        elif _CHAIN_LINE.match(bare):
            line["chain"], line["policy"] = _CHAIN_LINE.match(bare).groups()
            line["kind"] = "chain"
        elif bare.startswith("-A ") and len(bare.split()) > 1:
            line["chain"] = bare.split()[1]
            line["kind"] = "rule"
        out.append(line)
    return out


def rules(text, table=None):
    """The rule lines of ``text`` (of ``table`` when given)."""
    return [line for line in parse(text) if line["kind"] == "rule" and table in (None, line["table"])]


def policies(parsed):
    """``{(table, chain): policy}`` of a parsed text."""
    return {(line["table"], line["chain"]): line["policy"] for line in parsed if line["kind"] == "chain"}


def last_rules(parsed):
    """``{(table, chain): the chain's last rule}`` of a parsed text."""
    return {(line["table"], line["chain"]): line["text"] for line in parsed if line["kind"] == "rule"}


def target(rule):
    match = _TARGET.search(rule)
    return match.group(1) if match else None


def tokens(rule):
    try:
        return shlex.split(rule)
    except ValueError:
        return rule.split()
