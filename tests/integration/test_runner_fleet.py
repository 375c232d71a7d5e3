"""salt-run conntrack.fleet against a real master and three real minions."""

import pytest
from saltfactories.utils import random_string

from tests.conftest import LOADER_DIRS


@pytest.fixture(scope="module")
def three_minions(master):
    factories = [
        master.salt_minion_daemon(
            random_string(f"fleet{i}-"),
            overrides={**LOADER_DIRS, "mine_functions": {"conntrack.status": []}},
        )
        for i in range(3)
    ]
    started = []
    try:
        for factory in factories:
            factory.start()
            started.append(factory)
        yield started
    finally:
        for factory in started:
            factory.terminate()


def _fleet_after(mine_fun, salt_cli, salt_run_cli, ids):
    """``mine_fun`` (mine.update or mine.flush) on the minions, then the fleet of just them."""
    ret = salt_cli.run("-L", "--timeout=30", mine_fun, minion_tgt=",".join(ids), _timeout=60)
    assert ret.returncode == 0, ret
    return salt_run_cli.run("conntrack.fleet", f"tgt={','.join(ids)}", "tgt_type=list")


def test_fleet_reports_all_three(salt_cli, salt_run_cli, three_minions):
    ids = sorted(m.id for m in three_minions)
    ret = _fleet_after("mine.update", salt_cli, salt_run_cli, ids)
    assert ret.returncode == 0, ret
    rows = ret.data
    assert sorted(r["minion"] for r in rows) == ids
    for row in rows:
        assert row["source"] == "mine"
        assert row["verdict"] in ("ok", "warning", "critical"), row
        assert row["max"] > 0 and row["usage"] is not None and row["drop"] is not None
        # The minion's own status (with its recent block) judged by the one verdict.
        assert "recent" in row and row["reasons"], row
    rank = {"critical": 3, "warning": 2, "unknown": 1, "ok": 0}
    keys = [(-rank[r["verdict"]], -r["usage"]) for r in rows]
    assert keys == sorted(keys)

    live = salt_run_cli.run(
        "conntrack.fleet", "live=True", f"tgt={','.join(ids)}", "tgt_type=list", "timeout=20", _timeout=60
    )
    assert live.returncode == 0, live
    assert sorted(r["minion"] for r in live.data) == ids
    assert {r["source"] for r in live.data} == {"live"}
    for row in live.data:
        assert row["verdict"] in ("ok", "warning", "critical") and row["max"] > 0, row
    # Same host, same kernel: every minion reports the one global max.
    assert len({r["max"] for r in live.data}) == 1


def test_fleet_lists_minion_without_mine_data_as_unknown(salt_cli, salt_run_cli, three_minions):
    """A targeted minion with no mine data is listed as unknown, not silently missing."""
    ids = sorted(m.id for m in three_minions)
    ret = salt_cli.run("--timeout=30", "mine.flush", minion_tgt=ids[0], _timeout=60)
    assert ret.returncode == 0, ret
    ret = salt_run_cli.run("conntrack.fleet", f"tgt={','.join(ids)}", "tgt_type=list")
    assert ret.returncode == 0, ret
    rows = {r["minion"]: r for r in ret.data}
    assert sorted(rows) == ids
    assert rows[ids[0]]["verdict"] == "unknown" and "mine" in rows[ids[0]]["reasons"][0]
    assert all(rows[i]["verdict"] != "unknown" for i in ids[1:])


def test_fleet_with_an_empty_mine_says_why_and_fails(salt_cli, salt_run_cli, three_minions):
    """No conntrack.status in the mine at all: a failed run that shows the mine_functions lines to add."""
    ids = sorted(m.id for m in three_minions)
    ret = _fleet_after("mine.flush", salt_cli, salt_run_cli, ids)
    assert ret.returncode == 1, ret
    assert ret.data["result"] is False
    assert "none of the 3 targeted minions has conntrack.status in the mine" in ret.data["comment"]
    assert "mine_functions:\n  conntrack.status: []" in ret.data["add_to_minion_config"]
    ret = salt_run_cli.run("conntrack.fleet", "tgt=no-such-minion-*")
    assert ret.returncode == 1 and "no minion matches" in ret.data["comment"], ret
