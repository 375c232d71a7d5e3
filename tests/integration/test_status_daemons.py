"""conntrack.status answered by a real minion to a real master."""

import importlib.metadata
import os

import pytest
from saltfactories.utils import random_string

from tests.conftest import wait_for_log_event


def test_status_through_master(salt_cli, minion):
    ret = salt_cli.run("conntrack.status", minion_tgt=minion.id)
    assert ret.returncode == 0, ret
    data = ret.data
    assert data["flavour"] == "nf_conntrack"
    assert data["max"] > 0 and 0 <= data["usage"] <= 100
    assert "drop" in data["stats"]


def test_sys_doc_has_cli_examples(salt_call_cli):
    ret = salt_call_cli.run("sys.doc", "conntrack")
    assert ret.returncode == 0
    public = [name for name in ret.data if name.startswith("conntrack.")]
    assert "conntrack.status" in public
    for name in public:
        assert "CLI Example" in ret.data[name], name


# A sitecustomize on the daemons' PYTHONPATH: any import of this project's
# package (saltext_conntrack: the entry point and the core) is looked up in Salt's extmods only, where sync_all puts
# _utils. So neither a pip-installed copy nor the working tree can serve them.
HIDER = """
import importlib.abc, importlib.machinery, os, sys

LOG = {log!r}


class SyncOnly(importlib.abc.MetaPathFinder):
    # As if nothing but Salt's extmods held these packages: search only there.
    def find_spec(self, name, path=None, target=None):
        if not name.startswith("saltext_conntrack"):
            return None
        where = list(path) if path is not None else sys.path
        spec = importlib.machinery.PathFinder.find_spec(name, [p for p in where if os.sep + "extmods" + os.sep in p + os.sep])
        if spec is not None:
            return spec
        with open(LOG, "a", encoding="utf-8") as fh:
            fh.write(f"{{os.getpid()}} refused {{name}}\\n")
        raise ModuleNotFoundError(f"sync-only test: {{name}} is not in Salt's extmods", name=name)


sys.meta_path.insert(0, SyncOnly())
"""

LINE = "Nov 25 11:00:00 vm kernel: nf_conntrack: nf_conntrack: table full, dropping packet\n"


@pytest.fixture(scope="module")
def sync_only(salt_factories, tmp_path_factory, file_roots):
    """A master and a minion that get this project only through saltutil.sync_all."""
    tmp = tmp_path_factory.mktemp("sync-only")
    (tmp / "hider").mkdir()
    refused = tmp / "refused.log"
    (tmp / "hider" / "sitecustomize.py").write_text(HIDER.format(log=str(refused)), encoding="utf-8")
    environ = {**os.environ, "PYTHONPATH": str(tmp / "hider")}
    log = tmp / "kern.log"
    log.write_text("Nov 25 10:59:00 vm kernel: booting\n", encoding="utf-8")
    master = salt_factories.salt_master_daemon(
        random_string("sync-master-"),
        overrides={"file_roots": file_roots},
    )
    master.environ = environ  # a dict of its own: the manager's is shared by every factory
    with master.started():
        minion = master.salt_minion_daemon(
            random_string("sync-"),
            overrides={
                "loop_interval": 1,
                "mine_functions": {"conntrack.status": []},
                "beacons": {"conntrack": [{"source": str(log)}, {"min_interval": 0}, {"interval": 1}]},
            },
        )
        minion.environ = environ
        with minion.started():
            yield master, minion, log, refused, environ


def test_sync_all_only_every_loader_type(sync_only, event_listener):
    """The file_roots route, with no pip copy and no working tree on the path:
    after saltutil.sync_all, a module, a state, the beacon and the runner work."""
    master, minion, log, refused, environ = sync_only
    salt_cli = master.salt_cli()
    ret = salt_cli.run("saltutil.sync_all", minion_tgt=minion.id, _timeout=120)
    assert ret.returncode == 0, ret
    for kind, name in (
        ("modules", "conntrack"),
        ("states", "conntrack"),
        ("beacons", "conntrack"),
        ("utils", "saltext_conntrack"),
    ):
        assert any(name in entry for entry in ret.data[kind]), (kind, ret.data)

    ret = salt_cli.run("conntrack.check", minion_tgt=minion.id)
    assert ret.returncode == 0 and ret.data["verdict"] in ("ok", "warning", "critical"), ret

    ret = salt_cli.run(
        "state.single",
        "conntrack.not_blacklisted",
        "name=sync-only",
        "names=[xt_sync_only_test]",
        "test=True",
        minion_tgt=minion.id,
    )
    (res,) = ret.data.values()
    assert res["result"] is True and res["changes"] == {}, ret

    ret = salt_cli.run("saltutil.refresh_beacons", minion_tgt=minion.id)
    tag = f"salt/beacon/{minion.id}/conntrack/table_full"
    matched = wait_for_log_event(master, event_listener, tag, log, LINE)
    assert matched, f"no {tag} event within 60 s"

    salt_run = master.salt_run_cli()
    salt_run.environ = environ  # salt-run runs the runner in its own process
    ret = salt_run.run("saltutil.sync_all", _timeout=120)
    assert ret.returncode == 0 and any("conntrack" in entry for entry in ret.data["runners"]), ret
    assert salt_cli.run("mine.update", minion_tgt=minion.id).returncode == 0
    ret = salt_run.run("conntrack.fleet", _timeout=120)
    assert ret.returncode == 0, ret
    rows = [row for row in ret.data if row["minion"] == minion.id]
    assert rows and rows[0]["verdict"] in ("ok", "warning", "critical"), ret.data

    # The hider was in force: an installed copy's entry point was refused.
    if list(importlib.metadata.distributions(name="saltext.conntrack")):
        assert "refused saltext_conntrack\n" in refused.read_text(encoding="utf-8")
