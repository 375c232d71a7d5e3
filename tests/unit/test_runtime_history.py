"""The ``recent`` block (``runtime.history``): samples, windows, resets, a bounded file.

Moved from tests/unit/test_module_parsing.py.
"""

import json
import os

import pytest

from saltext_conntrack.runtime import history


def stats(drop=0, early_drop=0, insert_failed=0):
    return {"drop": drop, "early_drop": early_drop, "insert_failed": insert_failed, "found": 1}


@pytest.fixture
def host(tmp_path):
    """A root with a boot id, and a cachedir beside it."""
    root = tmp_path / "root"
    (root / "proc/sys/kernel/random").mkdir(parents=True)
    (root / "proc/sys/kernel/random/boot_id").write_text("boot-1\n")
    return str(root), str(tmp_path / "cache")


def test_recent_first_sample_is_none_then_rises(host):
    root, cache = host
    assert history.observe(cache, root, stats(drop=5), 1000.0, 300) is None
    got = history.observe(cache, root, stats(drop=9, early_drop=2, insert_failed=1), 1010.0, 300)
    assert {k: got[k] for k in ("drop", "early_drop", "insert_failed", "seconds")} == {
        "drop": 4,
        "early_drop": 2,
        "insert_failed": 1,
        "seconds": 10.0,
    }
    assert got["since"].startswith("1970-01-01T00:16:40")
    assert os.path.dirname(history.history_path(cache, root)) == os.path.join(cache, "conntrack")


def test_recent_window_takes_newest_sample_old_enough(host):
    root, cache = host
    for t, drop in ((1000.0, 0), (1100.0, 10), (1200.0, 30), (1290.0, 60)):
        history.observe(cache, root, stats(drop=drop), t, 0)
    # now=1300, window 100: newest at or before 1200 is the 1200 sample.
    got = history.observe(cache, root, stats(drop=61), 1300.0, 100)
    assert (got["drop"], got["seconds"]) == (31, 100.0)
    # window 0: the previous sample (the one just written at 1300).
    got = history.observe(cache, root, stats(drop=61), 1305.0, 0)
    assert (got["drop"], got["seconds"]) == (0, 5.0)
    # A window longer than the history: the oldest sample.
    got = history.observe(cache, root, stats(drop=61), 1310.0, 10_000)
    assert (got["drop"], got["seconds"]) == (61, 310.0)


def test_recent_counter_reset_and_reboot_start_a_new_baseline(host):
    root, cache = host
    history.observe(cache, root, stats(drop=50), 1000.0, 0)
    assert history.observe(cache, root, stats(drop=3), 1010.0, 0) is None  # module reload
    assert history.observe(cache, root, stats(drop=4), 1020.0, 0)["drop"] == 1
    with open(os.path.join(root, "proc/sys/kernel/random/boot_id"), "w", encoding="ascii") as fh:
        fh.write("boot-2\n")
    assert history.observe(cache, root, stats(drop=400), 1030.0, 0) is None  # rebooted: not a rise of 396
    assert history.observe(cache, root, stats(drop=400), 1040.0, 0)["drop"] == 0


def test_recent_history_is_bounded_and_spans_long_ago(host):
    root, cache = host
    now = 0.0
    for _ in range(3400):  # every 30 s for 28 hours
        now += 30
        history.observe(cache, root, stats(drop=int(now) // 1000), now, 0)
    with open(history.history_path(cache, root), encoding="utf-8") as fh:
        samples = [json.loads(line) for line in fh.read().splitlines()[1:]]
    assert len(samples) <= 2 * history.MAX_SAMPLES
    ages = [now - s[0] for s in samples]
    assert min(ages) == 0 and max(ages) > 20 * 3600
    # A one-hour window still finds a baseline between one and ~1.6 hours old.
    got = history.observe(cache, root, stats(drop=int(now) // 1000), now + 1, 3600)
    assert 3600 <= got["seconds"] <= 1.6 * 3600
    # ... and a short one the sample before.
    got = history.observe(cache, root, stats(drop=int(now) // 1000), now + 2, 10)
    assert got["seconds"] == 32.0


def test_recent_survives_an_unwritable_cache_and_a_torn_file(host, tmp_path):
    root, cache = host
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert history.observe(str(blocker), root, stats(drop=1), 1000.0, 0) is None  # cachedir is a file
    history.observe(cache, root, stats(drop=1), 1000.0, 0)
    with open(history.history_path(cache, root), "a", encoding="utf-8") as fh:
        fh.write("[1005.0,1")  # an append cut short
    got = history.observe(cache, root, stats(drop=2), 1010.0, 0)
    assert (got["drop"], got["seconds"]) == (1, 10.0)  # the torn line is skipped, not the history
    with open(history.history_path(cache, root), "w", encoding="utf-8") as fh:
        fh.write('{"boot": "boot-1"')
    assert history.observe(cache, root, stats(drop=2), 1020.0, 0) is None
    assert history.observe(cache, root, stats(drop=2), 1030.0, 0)["drop"] == 0


def test_recent_appends_between_compactions(host):
    root, cache = host
    path = history.history_path(cache, root)
    for i in range(2 * history.MAX_SAMPLES + 5):
        history.observe(cache, root, stats(drop=i), 1000.0 + 10 * i, 0)
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
        assert json.loads(lines[0]) == {"boot": "boot-1"}
        assert len(lines) <= 2 * history.MAX_SAMPLES + 1
    # Readings equal to a sample under a second old add no line.
    history.observe(cache, root, stats(drop=i), 1000.0 + 10 * i + 0.5, 0)
    with open(path, encoding="utf-8") as fh:
        assert len(fh.read().splitlines()) == len(lines)
