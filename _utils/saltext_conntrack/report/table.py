"""Views an operator scans: one short line per row, columns in reading order.

Salt's ``table`` outputter sorts a dict row's keys and wraps any cell of 50
characters or more at its spaces, so rows of dicts come out in alphabetical
columns over several lines. A view here is a list of lists instead: the
header first, then one list of short cells per row, cut so that the line
``| a | b | ... |`` stays within ``WIDTH`` columns. The full rows stay what the
functions return to every other outputter (``--out=json`` and the API).
"""

WIDTH = 160
# Salt's table wraps a cell at a space once it reaches 50 characters.
CELL_MAX = 49
# "| " + " | " between cells + " |"
PREFIX, DELIM, SUFFIX = 2, 3, 2


def wanted(opts, fun):
    """True when ``fun`` is what the command line called, with ``--out=table``.

    Only then: the same function called by another (``diagnose`` reads
    ``conntrack.namespaces``), over the API or by the reactor gives its rows.
    """
    return opts.get("output") == "table" and opts.get("fun") == fun


def cut(text, limit):
    """``text`` within ``limit`` characters, a cut one ending in ``…``."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def number(value):
    """A count in at most 6 characters: 999999, then 1.2M, 12.3G."""
    if value is None:
        return "-"
    if value < 1_000_000:
        return str(value)
    for unit, size in (("T", 10**12), ("G", 10**9), ("M", 10**6)):
        if value >= size:
            return f"{value / size:.1f}{unit}" if value < 100 * size else f"{value // size}{unit}"
    return str(value)


def duration(seconds):
    """A time to full in at most 5 characters: "-" when not filling, "now", 45s, 12m, 3.5h, 9d."""
    if seconds is None:
        return "-"
    if seconds <= 0:
        return "now"
    # Rounded down: a time to full is read as "at least this long".
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            tenths = int(seconds * 10 // size)
            return f"{tenths / 10:.1f}{unit}" if tenths < 100 else f"{tenths // 10}{unit}"
    return f"{int(seconds)}s"


def percent(value):
    return "-" if value is None else f"{value:.1f}%"


def view(header, rows, width=WIDTH):
    """``[header, *rows]`` with the last column (the free text) cut to fit ``width``.

    Every other cell is cut at ``CELL_MAX``; the last gets what is left of the
    line, at least 10 characters.
    """
    rows = [[cut(cell, CELL_MAX) for cell in row[:-1]] + [str(row[-1])] for row in rows]
    fixed = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    room = width - PREFIX - SUFFIX - DELIM * (len(header) - 1) - sum(fixed)
    room = max(min(room, CELL_MAX), 10)
    return [list(header)] + [row[:-1] + [cut(row[-1], room) or "-"] for row in rows]


def fleet(rows, width=WIDTH):
    """The fleet report's rows: minion, verdict, usage, count, max, drops, time to full, the first reason."""
    header = ["minion", "verdict", "usage", "count", "max", "drops", "full in", "reason"]
    cells = [
        [
            row["minion"],
            row["verdict"],
            percent(row["usage"]),
            number(row["count"]),
            number(row["max"]),
            number(row["drop"]),
            duration((row.get("trend") or {}).get("full_in")),
            row["reasons"][0] if row["reasons"] else "",
        ]
        for row in rows
    ]
    return view(header, cells, width)


def owner(found):
    """Who holds a namespace, in a few words: runtime and container, else process and pid."""
    if not found:
        return ""
    if found.get("container"):
        return f"{found.get('runtime') or 'container'} {found['container']}"
    return f"{found.get('process') or '?'} (pid {found.get('pid')})"


def namespaces(rows, width=WIDTH):
    """``conntrack.namespaces``' rows: namespace, usage, count, drops, early, insert_failed, owner."""
    header = ["namespace", "usage", "count", "drops", "early", "insert_failed", "owner or error"]
    cells = [
        [
            ", ".join(row["names"]) or ("host" if row["initial"] else f"net:[{row['inode']}]"),
            percent(row["usage"]),
            number(row["count"]),
            number(row["drop"]),
            number(row["early_drop"]),
            number(row["insert_failed"]),
            row["error"] or owner(row["owner"]),
        ]
        for row in rows
    ]
    return view(header, cells, width)
