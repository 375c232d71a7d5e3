"""remediation.observe: the host's namespace and the others, keyed by inode, with usage."""

import os

from saltext_conntrack.remediation import observe

STATUS = {"max": 200, "count": 50, "stats": {"drop": 3}, "flavour": "nf_conntrack"}


def test_host_only_root(tmp_path):
    seen = observe.namespaces(str(tmp_path), STATUS)
    assert seen == [{"key": "initial", "name": "(host)", "count": 50, "drop": 3, "usage": 25.0}]
    assert observe.shown(seen) == [{"name": "(host)", "count": 50, "usage": 25.0, "drop": 3}]


def test_the_host_is_keyed_by_its_netns_inode(tmp_path):
    (tmp_path / "proc/self/ns").mkdir(parents=True)
    (tmp_path / "proc/self/ns/net").write_text("")
    inode = os.stat(tmp_path / "proc/self/ns/net").st_ino
    assert observe.host_key(str(tmp_path)) == f"netns:{inode}"


def test_other_namespaces_and_unreadable_ones(tmp_path, monkeypatch):
    rows = [
        {"inode": 11, "error": None, "count": 200, "drop": 9, "name": "blue"},
        {"inode": 12, "error": "permission denied", "count": None, "drop": None, "name": "red"},
    ]
    asked = []
    monkeypatch.setattr(
        observe.runtime.namespaces,
        "survey",
        lambda root, flavour, maximum, netlink_ok: asked.append(netlink_ok) or rows,
    )
    monkeypatch.setattr(observe.runtime.namespaces, "label", lambda row: row["name"])
    seen = observe.namespaces(str(tmp_path), STATUS)
    assert [(s["key"], s["usage"]) for s in seen] == [("initial", 25.0), ("netns:11", 100.0)]
    # A kernel without the proc table: the other namespaces are read over ctnetlink, as conntrack.namespaces does.
    observe.namespaces(str(tmp_path), STATUS, netlink_ok=True)
    assert asked == [False, True]


def test_no_max_is_no_usage(tmp_path):
    assert observe.namespaces(str(tmp_path), {**STATUS, "max": 0})[0]["usage"] == 0.0
