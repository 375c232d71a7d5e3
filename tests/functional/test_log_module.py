"""conntrack_log.read_log through the real Salt loader, on fixture trees."""

import os

import pytest
from salt.exceptions import SaltInvocationError

from tests.support.beacon_lines import SUPPRESSED, TABLE_FULL


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "var/log").mkdir(parents=True)
    return root


def test_reads_every_era_like_the_beacon(make_loaders, tree):
    kern = tree / "var/log/kern.log"
    kern.write_text(
        "Nov 25 10:00:00 vm kernel: booting\n"
        + "".join(line + "\n" for _, line, _ in TABLE_FULL)
        + "".join(line + "\n" for _, line, _ in SUPPRESSED)
    )
    ret = make_loaders(tree).modules["conntrack_log.read_log"]("/var/log/kern.log")
    assert ret["path"] == os.path.realpath(kern)
    assert ret["matched"] == len(TABLE_FULL)
    assert ret["suppressed"] == sum(count for _, _, count in SUPPRESSED)
    expected = {}
    for _, _, ns in TABLE_FULL:
        key = "null" if ns is None else str(ns)
        expected[key] = expected.get(key, 0) + 1
    assert ret["netns"] == expected
    assert ret["first"] is not None and ret["last"] is not None


def test_max_bytes_reads_the_end_from_a_whole_line(make_loaders, tree):
    line = "2026-11-25T11:00:00.5+00:00 vm kernel: nf_conntrack: nf_conntrack: table full in netns 9, dropping packet\n"
    (tree / "var/log/kern.log").write_text(line * 100)
    ret = make_loaders(tree).modules["conntrack_log.read_log"]("/var/log/kern.log", max_bytes=len(line) * 10 + 5)
    assert ret["matched"] == 10 and ret["netns"] == {"9": 10}


@pytest.mark.parametrize(
    "path,why",
    [
        ("var/log/kern.log", "must be an absolute path"),
        ("/var/log/../../etc/passwd", "must not contain '..'"),
        ("/var/log/out.log", "outside"),
        ("/var/log/kern\x00.log", "must be an absolute path"),
    ],
)
def test_bad_paths_are_refused(make_loaders, tree, tmp_path, path, why):
    outside = tmp_path / "secret"
    outside.write_text("x\n")
    os.symlink(outside, tree / "var/log/out.log")
    with pytest.raises(SaltInvocationError, match=why):
        make_loaders(tree).modules["conntrack_log.read_log"](path)
