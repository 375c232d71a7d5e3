"""The beacon's findings (``report.facts``): the same as ``conntrack.diagnose(walk=False)``'s for
the same status, with the slow facts kept while they hold."""

import pytest
from salt.exceptions import CommandExecutionError

from saltext_conntrack.firewall import generation
from saltext_conntrack.report import diagnosis, facts
from saltext_conntrack.runtime import namespaces
from tests.support.fixtures import build_root

STATUS = {"flavour": "nf_conntrack", "count": 950, "max": 1000, "usage": 95.0, "buckets": 100, "stats": {"drop": 7}}


def test_same_findings_as_diagnose_for_the_same_status(make_loaders, tmp_path):
    root = str(build_root(tmp_path, count=950, maximum=1000, buckets=100, drop=7))
    conf = tmp_path / "etc/sysconfig/iptables-config"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text('IPTABLES_MODULES_UNLOAD="yes"\n')
    mods = make_loaders(root).modules
    status = mods["conntrack.status"]()
    expected = diagnosis.run(root, diagnosis.gather(root, status, mods), walk=False)["findings"]
    kept = facts.Facts()
    assert {f["id"] for f in expected} >= {"drops_since_boot", "hash_chains_long", "limit_low"}
    assert kept.findings(root, status, mods, 0.0) == expected
    assert kept.findings(root, status, mods, 1.0) == expected  # from what was kept


class Readers(dict):
    """``__salt__`` stand-in counting what is asked."""

    def __init__(self, **answers):
        self.calls = []

        def reader(name, answer):
            def call():
                self.calls.append(name)
                if isinstance(answer, Exception):
                    raise answer
                return answer

            return call

        defaults = {name: {} for name in diagnosis.READERS} | {"conntrack_fw.dependents": []}
        super().__init__({name: reader(name, answer) for name, answer in (defaults | answers).items()})


@pytest.fixture
def still(monkeypatch):
    monkeypatch.setattr(generation, "fingerprint", lambda root: ("gen", 1))
    monkeypatch.setattr(namespaces, "discover", lambda root: {})


def test_slow_facts_kept_until_max_changes_or_ttl(tmp_path, still):
    readers, kept = Readers(), facts.Facts(ttl=600)
    for now in (0, 10, 599):
        kept.gather(str(tmp_path), STATUS, readers, now)
    assert sorted(readers.calls) == sorted(facts.SLOW + ("conntrack_fw.dependents",))
    readers.calls.clear()
    kept.gather(str(tmp_path), {**STATUS, "max": 2000}, readers, 600)  # tuned: asked again (rules: ttl)
    assert sorted(readers.calls) == sorted(facts.SLOW + ("conntrack_fw.dependents",))
    readers.calls.clear()
    kept.gather(str(tmp_path), {**STATUS, "max": 2000}, readers, 700)
    assert readers.calls == []


def test_a_failed_fact_is_a_note_and_asked_again(tmp_path, still):
    readers = Readers(**{"conntrack.timeouts": CommandExecutionError("no timeouts")})
    kept = facts.Facts()
    first = kept.gather(str(tmp_path), STATUS, readers, 0)
    second = kept.gather(str(tmp_path), STATUS, readers, 1)
    assert first["timeouts"] is None and first["notes"] == ["conntrack.timeouts: no timeouts"] == second["notes"]
    assert readers.calls.count("conntrack.timeouts") == 2 and readers.calls.count("conntrack.recommend") == 1
    broken = Readers(**{"conntrack_fw.dependents": CommandExecutionError("nft broke")})
    assert facts.Facts().gather(str(tmp_path), STATUS, broken, 0)["notes"] == ["conntrack_fw.dependents: nft broke"]


def test_namespaces_walked_again_for_one_a_line_names(tmp_path, monkeypatch):
    walks = []
    monkeypatch.setattr(generation, "fingerprint", lambda root: None)
    monkeypatch.setattr(namespaces, "discover", lambda root: walks.append(1) or {11: {"inode": 11}})
    kept = facts.Facts(ttl=600)
    assert kept.discovered("/", 0) == {11: {"inode": 11}} and kept.discovered("/", 5, [11, None]) and len(walks) == 1
    kept.discovered("/", 6, [12])  # a namespace not seen: walked again
    kept.discovered("/", 7, [12])  # still not there: gone, not walked for again
    assert len(walks) == 2
    kept.discovered("/", 606)
    assert len(walks) == 3
