"""runtime.trend: the least-squares rise of the count, full_in, and the history that feeds it."""

import random

from saltext_conntrack.runtime import history, trend


def _samples(rates, start=1000.0, count=0, insert=0, step=1.0, noise=0):
    rng = random.Random(7)
    rows, t = [], start
    for rate in rates:
        count += rate
        insert += max(rate, 0)
        rows.append([t, 0, 0, 0, count + rng.randint(-noise, noise), insert])
        t += step
    return rows


def test_steady_rise_gives_full_in_at_that_rise():
    rows = _samples([10] * 30)
    now, count = rows[-1][0], rows[-1][4]
    got = trend.compute(rows, now, count, 1000, 300)
    assert got["count_per_s"] == 10.0 and got["insert_per_s"] == 10.0
    assert got["full_in"] == (1000 - count) / 10 and got["samples"] == 30 and got["seconds"] == 29.0
    assert "full in" in got["reason"]


def test_noise_does_not_fool_the_slope():
    rows = _samples([5] * 60, count=500, noise=20)
    got = trend.compute(rows, rows[-1][0], rows[-1][4], 10000, 300)
    assert 4.0 < got["count_per_s"] < 6.0 and got["full_in"] is not None


def test_flat_or_falling_has_no_full_in():
    for rates in ([0] * 20, [-3] * 20):
        rows = _samples(rates, count=500)
        got = trend.compute(rows, rows[-1][0], rows[-1][4], 1000, 300)
        assert got["full_in"] is None and "not rising" in got["reason"]


def test_too_short_says_so():
    rows = _samples([10, 10])
    got = trend.compute(rows, rows[-1][0], 20, 1000, 300)
    assert got["full_in"] is None and got["count_per_s"] is None and "too short" in got["reason"]


def test_full_now_is_zero_and_old_samples_are_left_out():
    rows = _samples([0] * 10, start=0.0) + _samples([10] * 10, start=1000.0, count=900)
    got = trend.compute(rows, 1009.0, 1000, 1000, 60)
    assert got["full_in"] == 0 and got["samples"] == 10


def test_insert_counter_that_never_moves_is_not_a_rate():
    rows = [[t, 0, 0, 0, 10 * t, 0] for t in range(10)]
    got = trend.compute(rows, 9, 90, 1000, 300)
    assert got["insert_per_s"] is None and "did not move" in got["insert_reason"]
    old = [[t, 0, 0, 0] for t in range(5)] + rows
    assert trend.compute(old, 9, 90, 1000, 300)["samples"] == 10  # samples without a count are skipped


def test_history_keeps_count_and_insert_and_reads_old_samples(tmp_path):
    root, cache = str(tmp_path), str(tmp_path / "cache")
    for t in range(5):
        recent, rows = history.record(cache, root, {"drop": 0, "insert": 10 * t}, 100.0 + t, 300, count=7 * t)
    assert recent["seconds"] == 4.0 and [r[4] for r in rows] == [0, 7, 14, 21, 28]
    path = history.history_path(cache, root)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("[104.5,0,0,0]\n[104.6,0,0,0,1,null]\n[1,2]\n")
    _, rows = history.record(cache, root, {"drop": 0, "insert": 50}, 106.0, 300, count=30)
    assert len(rows) == 8 and rows[-1] == [106.0, 0, 0, 0, 30, 50, None]


def test_clashres_rise_is_in_recent_where_both_readings_have_it(tmp_path):
    root, cache = str(tmp_path), str(tmp_path / "cache")
    recent, _ = history.record(cache, root, {"insert_failed": 0, "clashres": 3}, 1.0, 0, count=10)
    assert recent is None
    recent, rows = history.record(cache, root, {"insert_failed": 1, "clashres": 10}, 2.0, 0, count=10)
    assert recent["clashres"] == 7 and recent["insert_failed"] == 1 and rows[-1][6] == 10
    recent, _ = history.record(cache, root, {"insert_failed": 1, "clashres": 2}, 3.0, 0, count=10)
    assert recent is None  # clashres went down: a module reload, a new baseline
    recent, _ = history.record(cache, root, {"insert_failed": 1}, 4.0, 0, count=10)
    assert "clashres" not in recent  # a kernel without the column


def test_count_falling_is_no_reset_but_insert_falling_is(tmp_path):
    root, cache = str(tmp_path), str(tmp_path / "cache")
    history.record(cache, root, {"insert": 10}, 1.0, 300, count=100)
    _, rows = history.record(cache, root, {"insert": 11}, 2.0, 300, count=50)
    assert len(rows) == 2
    _, rows = history.record(cache, root, {"insert": 3}, 3.0, 300, count=50)
    assert len(rows) == 1
