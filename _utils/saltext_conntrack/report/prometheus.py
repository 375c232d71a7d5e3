"""node_exporter's textfile-collector format for the breakdown and the findings.

Names start with ``saltext_conntrack_``: node_exporter already exports
``node_nf_conntrack_entries``, ``..._entries_limit`` and the stat counters,
so those are not repeated. Label values come from fixed sets (protocols, TCP
states, finding ids) or a top-N list, so the number of series stays bounded
whatever the table holds.
"""

import os

from salt.exceptions import SaltInvocationError

from saltext_conntrack.common import files, numbers, paths
from saltext_conntrack.report import diagnosis

PREFIX = "saltext_conntrack_"
PROTOCOLS = ("tcp", "udp", "icmp", "icmpv6", "sctp", "dccp", "gre", "udplite")
TCP_STATES = (
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "FIN_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "TIME_WAIT",
    "CLOSE",
    "SYN_SENT2",
)
TOP_MAX = 20


def target(root, path):
    """The real file ``path`` (an operator's host path) will be written to; checked before any work.

    Absolute, ending in ``.prom`` (node_exporter reads only those), in an
    existing directory, and under ``conntrack.root`` once links are resolved.
    """
    joined = paths.host(root, path, "path")
    if not path.endswith(".prom") or path.endswith("/.prom"):
        raise SaltInvocationError(
            f"path must name a file ending in .prom (node_exporter reads only those), got {numbers.shown(path)}"
        )
    real = paths.contained(root, joined)
    if not os.path.isdir(os.path.dirname(real)):
        raise SaltInvocationError(
            f"{os.path.dirname(path)} does not exist: give node_exporter's --collector.textfile.directory"
        )
    if os.path.isdir(real):
        raise SaltInvocationError(f"{path} is a directory")
    return paths.writable(root, real, "textfile")


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Doc:
    def __init__(self):
        self.lines = []

    def family(self, name, help_text, samples):
        """One metric family: HELP, TYPE gauge, then ``(labels dict, value)`` samples."""
        self.lines.append(f"# HELP {PREFIX}{name} {help_text}")
        self.lines.append(f"# TYPE {PREFIX}{name} gauge")
        for labels, value in samples:
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            self.lines.append(f"{PREFIX}{name}{{{label_text}}} {value}" if label_text else f"{PREFIX}{name} {value}")

    def text(self):
        return "\n".join(self.lines) + "\n"


def _breakdown(doc, summary, top):
    protocols = summary["by_protocol"]
    other = sum(n for proto, n in protocols.items() if proto not in PROTOCOLS)
    doc.family("walk_entries", "Entries counted by the last walk of the table.", [({}, summary["total"])])
    doc.family(
        "protocol_entries",
        "Entries by layer 4 protocol (others summed as other).",
        [({"protocol": p}, protocols.get(p, 0)) for p in PROTOCOLS] + [({"protocol": "other"}, other)],
    )
    states = summary["tcp_states"]
    doc.family(
        "tcp_state_entries",
        "TCP entries by conntrack state.",
        [({"state": s}, states.get(s, 0)) for s in TCP_STATES]
        + [({"state": "other"}, sum(n for s, n in states.items() if s not in TCP_STATES))],
    )
    doc.family(
        "family_entries",
        "Entries by address family.",
        [({"family": f}, summary.get("by_family", {}).get(f, 0)) for f in ("ipv4", "ipv6")],
    )
    doc.family(
        "zone_entries",
        "Entries by conntrack zone (the kernel prints zone=N), the fullest zones only.",
        [({"zone": z}, n) for z, n in list(summary.get("by_zone", {}).items())[:TOP_MAX]],
    )
    doc.family("assured_entries", "Entries that saw traffic both ways ([ASSURED]).", [({}, summary["assured"])])
    doc.family("unreplied_entries", "Entries that never saw a reply ([UNREPLIED]).", [({}, summary["unreplied"])])
    for key, label, help_text in (
        ("src", "address", "Entries of the top sources (original direction), top-N only."),
        ("dst", "address", "Entries of the top destinations (original direction), top-N only."),
    ):
        doc.family(f"top_{key}_entries", help_text, [({label: k}, n) for k, n in summary["top"][key][:top]])
    doc.family(
        "top_dport_entries",
        "Entries of the top destination ports, top-N only.",
        [({"protocol": k.split("/")[0], "port": k.split("/")[1]}, n) for k, n in summary["top"]["dport"][:top]],
    )


def _trend(doc, trend):
    """``full_in`` and the insert rate of ``status``'s trend: +Inf when not rising, NaN when unknown."""
    full_in = trend.get("full_in")
    if full_in is None:
        full_in = "+Inf" if trend.get("count_per_s") is not None else "NaN"
    doc.family(
        "full_in_seconds",
        "Seconds until the table is full at the current rise (least-squares over the status history); "
        "0 full now, +Inf not rising, NaN too short a history.",
        [({}, full_in)],
    )
    rate = trend.get("insert_per_s")
    doc.family(
        "insert_rate",
        "New conntrack entries per second (the insert counter's rise); NaN where the kernel does not count it.",
        [({}, "NaN" if rate is None else rate)],
    )
    count_rate = trend.get("count_per_s")
    doc.family(
        "count_rate",
        "Rise of the entry count per second (negative when it falls); NaN too short a history.",
        [({}, "NaN" if count_rate is None else count_rate)],
    )


def render(result, top, now):
    """The textfile for one ``conntrack.diagnose`` result (with its ``summary`` when it walked)."""
    doc = _Doc()
    present = {f["id"]: diagnosis.SEVERITY[f["severity"]] for f in result["findings"]}
    doc.family(
        "finding",
        "Diagnosis findings by id: 0 absent, 1 info, 2 warning, 3 critical.",
        [({"id": ident}, present.get(ident, 0)) for ident in diagnosis.IDS],
    )
    walk = result.get("walk") or {}
    doc.family(
        "walk_complete",
        "1 when the last walk read the whole table, 0 for a sample or no walk.",
        [({}, int(bool(walk.get("complete"))))],
    )
    doc.family("diagnose_duration_seconds", "Seconds the last diagnosis took.", [({}, walk.get("seconds", 0.0))])
    doc.family("diagnose_timestamp_seconds", "When the last diagnosis ran (Unix time).", [({}, round(now, 3))])
    if result.get("trend") is not None:
        _trend(doc, result["trend"])
    if result.get("summary"):
        _breakdown(doc, result["summary"], min(top, TOP_MAX))
    return doc.text()


def publish(root, path, real, result, top, now):
    """Write ``result`` to ``real`` (``path`` as :py:func:`target` checked it), atomically; what was written."""
    text = render(result, top, now)
    files.atomic_write(root, real, text, 0o644)
    return {
        "path": path,
        "written": real,
        "bytes": len(text.encode()),
        "findings": [f["id"] for f in result["findings"]],
        "walk": result["walk"],
    }
