"""The firewall's cheap fingerprint (``firewall.generation``) and the ``dependents`` answer kept by it."""

import os
import struct

import pytest
from salt.exceptions import CommandExecutionError

from saltext_conntrack.firewall import generation

# A real NFT_MSG_NEWGEN reply (generation 1), as the kernel sent it.
NEWGEN = bytes.fromhex(
    "300000000f0a0000010000006724000000000001080001000000000108000200000024670c000300707974686f6e3300"
)


def test_parse_gen_reads_the_id_an_error_or_nothing():
    assert generation.parse_gen(NEWGEN) == 1
    bumped = NEWGEN[:24] + struct.pack(">I", 77) + NEWGEN[28:]
    assert generation.parse_gen(bumped) == 77
    error = struct.pack("=IHHII", 36, generation.NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", -1) + bytes(16)
    assert generation.parse_gen(error) == ("error", 1)
    assert generation.parse_gen(b"") is None
    assert generation.parse_gen(NEWGEN[:20]) is None  # no attribute
    assert generation.parse_gen(NEWGEN[:20] + struct.pack("=HH", 0, 1)) is None  # a zero-length attribute ends it


def test_nft_generation_on_this_kernel_is_an_id_or_a_stable_error():
    first, second = generation.nft_generation(), generation.nft_generation()
    assert isinstance(first, (int, tuple))
    assert first == second or isinstance(first, int)  # an id only moves when someone commits rules


def test_saved_files_fingerprint_moves_when_a_file_changes(tmp_path):
    before = generation.saved_files(str(tmp_path))
    assert before == (None,) * len(before)
    saved = tmp_path / "etc/iptables/rules.v4"
    saved.parent.mkdir(parents=True)
    saved.write_text("*filter\nCOMMIT\n")
    written = generation.saved_files(str(tmp_path))
    assert written != before
    os.utime(saved, ns=(1, 1))
    assert generation.saved_files(str(tmp_path)) != written


def test_legacy_tables_of_a_listed_table_are_values_not_raised(tmp_path):
    names = tmp_path / "net/ip_tables_names"
    names.parent.mkdir(parents=True)
    names.write_text("h19nosuchtable\n")
    found = generation.legacy_tables(str(tmp_path))
    assert len(found) == 1 and found[0][0] == generation.socket.AF_INET and found[0][-2] == "error"
    assert generation.legacy_tables(str(tmp_path / "none")) == ()


@pytest.fixture
def mark(monkeypatch):
    value = {"v": ("gen", 1)}
    monkeypatch.setattr(generation, "fingerprint", lambda root: value["v"])
    return value


def test_rules_kept_while_the_fingerprint_holds(mark):
    rules, answers = generation.Rules(ttl=600), iter(range(100))
    ask = lambda: next(answers)  # noqa: E731
    assert [rules.get("/", ask, t) for t in (0, 1, 599)] == [0, 0, 0]
    assert rules.get("/", ask, 600) == 1  # ttl
    mark["v"] = ("gen", 2)
    assert rules.get("/", ask, 601) == 2  # a committed change
    mark["v"] = None
    assert [rules.get("/", ask, 602), rules.get("/", ask, 602)] == [3, 4]  # cannot tell: always asked
    assert rules.asked == 5


def test_rules_never_keep_an_error(mark):
    rules = generation.Rules()

    def broken():
        raise CommandExecutionError("nft broke")

    with pytest.raises(CommandExecutionError):
        rules.get("/", broken, 0)
    assert rules.kept is None and rules.get("/", lambda: ["rule"], 1) == ["rule"]


def test_fingerprint_of_this_host_is_stable_between_two_looks(tmp_path):
    first = generation.fingerprint(str(tmp_path))
    if first is not None:
        assert len(first) == 4 and generation.fingerprint(str(tmp_path))[1:] == first[1:]
