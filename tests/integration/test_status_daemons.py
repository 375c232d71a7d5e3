"""conntrack.status answered by a real minion to a real master."""

from saltfactories.utils import random_string



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


def test_sync_all_from_file_roots(master, salt_cli):
    """The file_roots route: a minion with no module_dirs is shipped the loader files by sync_all."""
    factory = master.salt_minion_daemon(random_string("sync-"))
    with factory.started():
        ret = salt_cli.run("saltutil.sync_all", minion_tgt=factory.id)
        assert ret.returncode == 0, ret
        assert "modules.conntrack" in ret.data["modules"]
        ret = salt_cli.run("conntrack.check", minion_tgt=factory.id)
        assert ret.returncode == 0, ret
        assert ret.data["verdict"] in ("ok", "warning", "critical")
