"""The scan views: header first, reading order, within 160 columns, no cell Salt would wrap."""

from saltext_conntrack.report import fleet, table

STATUS = {
    "count": 950,
    "max": 1000,
    "usage": 95.0,
    "stats": {"drop": 12, "early_drop": 0, "insert_failed": 0},
    "recent": {"drop": 12, "early_drop": 0, "insert_failed": 0, "seconds": 60},
}


def _line(row):
    """The line Salt's table outputter prints for a row (prefix, delimiters, suffix)."""
    return "| " + " | ".join(row) + " |"


def test_fleet_view_in_reading_order_and_width():
    rows = fleet.rows({"web01": STATUS, "x" * 300: {"count": 1}}, ["web01", "db02"], 75, 90, live=False)
    view = table.fleet(rows)
    assert view[0] == ["minion", "verdict", "usage", "count", "max", "drops", "full in", "reason"]
    assert [r[0] for r in view[1:]] == ["web01", "db02", "x" * 48 + "…"]
    assert view[1][:6] == ["web01", "critical", "95.0%", "950", "1000", "12"]
    widths = [max(len(r[i]) for r in view) for i in range(8)]
    assert len(_line([c.ljust(w) for c, w in zip(view[1], widths)])) <= 160
    for row in view:
        assert all(len(cell) < 50 for cell in row), row
    assert view[2][7].startswith("no conntrack.status in the mine")
    assert view[3][7].startswith("malformed conntrack.status")


def test_fleet_rows_read_left_to_right_in_json():
    (one,) = fleet.rows({"web01": STATUS}, ["web01"], 75, 90, live=False)
    assert list(one)[:7] == ["minion", "verdict", "usage", "count", "max", "drop", "reason"]
    assert one["reason"] == one["reasons"][0]


def test_fleet_view_says_when_each_table_is_full():
    filling = dict(STATUS, trend={"count_per_s": 2.5, "full_in": 1800, "seconds": 600, "samples": 10})
    rows = fleet.rows({"web01": filling, "db02": STATUS}, ["web01", "db02"], 75, 90, live=False)
    assert {r[0]: r[6] for r in table.fleet(rows)} == {"minion": "full in", "web01": "30m", "db02": "-"}


def test_durations_stay_short():
    cases = (None, -1, 0, 45, 60, 599, 3600 * 3.5, 86400 * 12)
    assert [table.duration(s) for s in cases] == ["-", "now", "now", "45s", "1.0m", "9.9m", "3.5h", "12d"]


def test_numbers_stay_short():
    assert [table.number(n) for n in (None, 0, 999999, 1_000_000, 12_345_678, 4_300_000_000, 10**14)] == [
        "-", "0", "999999", "1.0M", "12.3M", "4.3G", "100T"
    ]  # fmt: skip
    assert table.cut("a  b\nc", 10) == "a b c" and table.cut("abcdef", 4) == "abc…"


def test_namespaces_view_names_the_owner_or_the_error():
    rows = [
        {"inode": 1, "initial": True, "names": [], "owner": None, "count": 5, "usage": 0.5, "drop": 0,
         "early_drop": 0, "insert_failed": 0, "error": None},
        {"inode": 2, "initial": False, "names": ["blue"], "owner": {"pid": 7, "process": "sleep", "runtime": None,
         "container": None}, "count": 1, "usage": 0.1, "drop": 0, "early_drop": 0, "insert_failed": 0, "error": None},
        {"inode": 3, "initial": False, "names": [], "owner": {"pid": 9, "process": "pause", "runtime": "docker",
         "container": "abc123"}, "count": None, "usage": None, "drop": None, "early_drop": None,
         "insert_failed": None, "error": "cannot enter: permission denied " * 5},
    ]  # fmt: skip
    view = table.namespaces(rows)
    assert [r[0] for r in view[1:]] == ["host", "blue", "net:[3]"]
    assert view[2][6] == "sleep (pid 7)" and view[3][1] == "-" and view[3][6].endswith("…")


def test_only_the_function_the_command_line_called_gets_the_view():
    assert table.wanted({"output": "table", "fun": "conntrack.fleet"}, "conntrack.fleet")
    assert not table.wanted({"output": "table", "fun": "conntrack.diagnose"}, "conntrack.namespaces")
    assert not table.wanted({"output": "json", "fun": "conntrack.fleet"}, "conntrack.fleet")
    assert not table.wanted({}, "conntrack.fleet")
