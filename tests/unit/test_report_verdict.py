"""saltext_conntrack.report.verdict: one level and one set of words for a status."""

import math

import pytest

from saltext_conntrack.report import verdict


def status(count=100, maximum=1000, drop=0, early_drop=0, recent=None):
    return {"count": count, "max": maximum, "stats": {"drop": drop, "early_drop": early_drop, "insert_failed": 0},
            "recent": recent}  # fmt: skip


@pytest.mark.parametrize(
    ("usage", "warning", "critical", "level"),
    [(74.99, 75, 90, "ok"), (75, 75, 90, "warning"), (89.99, 75, 90, "warning"), (90, 75, 90, "critical"),
     (100, None, None, "ok"), (100, 75, None, "warning"), (80, None, 80, "critical"), (0, 0, None, "warning")],
)  # fmt: skip
def test_usage_level(usage, warning, critical, level):
    assert verdict.usage_level(usage, warning, critical) == level


def test_worst():
    assert verdict.worst([]) == "ok"
    assert verdict.worst(["ok", "unknown"]) == "unknown"
    assert verdict.worst(["warning", "unknown", "ok"]) == "warning"
    assert verdict.worst(["critical", "warning"]) == "critical"


def test_assess_ok():
    assert verdict.assess(status()) == {"verdict": "ok", "reasons": ["usage 10.0% (100/1000), no drops"], "usage": 10.0}


def test_assess_usage_levels_and_rounding():
    assert verdict.assess(status(count=800)) == {
        "verdict": "warning",
        "reasons": ["usage 80.0% (800/1000) is at or above 75%"],
        "usage": 80.0,
    }
    assert verdict.assess(status(count=950))["reasons"] == ["usage 95.0% (950/1000) is at or above 90%"]
    assert verdict.assess(status(count=950))["verdict"] == "critical"
    assert verdict.assess(status(count=1, maximum=3))["usage"] == 33.33
    assert verdict.assess(status(count=600), warning=50, critical=None)["reasons"] == [
        "usage 60.0% (600/1000) is at or above 50%"
    ]
    assert verdict.assess(status(count=5, maximum=0))["usage"] == 0.0


def test_assess_drops_since_boot_count_without_an_earlier_sample():
    got = verdict.assess(status(drop=5, early_drop=7))
    assert got["verdict"] == "critical"
    assert got["reasons"] == [
        "5 packets dropped since boot (no earlier sample to compare with) because the table was full "
        "(stat drop; 5 since boot)",
        "7 entries evicted early since boot (no earlier sample to compare with): the table was at its limit "
        "(stat early_drop; 7 since boot)",
    ]


def test_assess_old_drops_are_a_note_once_a_sample_shows_none_now():
    got = verdict.assess(status(drop=5, recent={"drop": 0, "early_drop": 0, "seconds": 60}))
    assert got == {"verdict": "ok", "reasons": ["no drops in the last 60 s; the 5 since boot are past"], "usage": 10.0}


def test_assess_current_drops_and_evictions():
    got = verdict.assess(status(drop=9, early_drop=7, recent={"drop": 2, "early_drop": 0, "seconds": 300}))
    assert got["verdict"] == "critical"
    assert got["reasons"] == [
        "2 packets dropped in the last 300 s because the table was full (stat drop; 9 since boot)"
    ]
    got = verdict.assess(status(early_drop=7, recent={"drop": 0, "early_drop": 3, "seconds": 60}))
    assert got["verdict"] == "warning"
    assert got["reasons"] == [
        "3 entries evicted early in the last 60 s: the table was at its limit (stat early_drop; 7 since boot)"
    ]


def test_assess_evictions_do_not_lower_a_critical_usage():
    got = verdict.assess(status(count=990, recent={"drop": 0, "early_drop": 3, "seconds": 60}))
    assert got["verdict"] == "critical"
    assert len(got["reasons"]) == 2


def test_validated_returns_only_what_the_verdict_reads():
    raw = {"count": 10, "max": 100, "stats": {"drop": 1, "found": 9}, "extra": "x",
           "recent": {"drop": 1, "seconds": 30.5}}  # fmt: skip
    assert verdict.validated(raw) == {
        "count": 10,
        "max": 100,
        "stats": {"drop": 1, "early_drop": 0, "insert_failed": 0},
        "recent": {"drop": 1, "early_drop": 0, "insert_failed": 0, "seconds": 30.5},
        "trend": None,
    }
    assert verdict.validated({"count": 0, "max": 0})["recent"] is None


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (None, "not a conntrack.status: None"),
        ([1], "not a conntrack.status: [1]"),
        ({"count": True, "max": 1}, "count is not a count: True"),
        ({"count": -1, "max": 1}, "count is not a count: -1"),
        ({"count": 1, "max": "100"}, "max is not a count: '100'"),
        ({"count": 1, "max": 1.0}, "max is not a count: 1.0"),
        ({"count": 1, "max": 1, "stats": [1]}, "stats is not a mapping"),
        ({"count": 1, "max": 1, "stats": {"drop": None}}, "drop is not a count: None"),
        ({"count": 1, "max": 1, "recent": {"drop": 1}}, 'recent is malformed: {"drop": 1}'),
        ({"count": 1, "max": 1, "recent": {"seconds": math.nan}}, 'recent is malformed: {"seconds": NaN}'),
        ({"count": 1, "max": 1, "recent": {"seconds": True}}, 'recent is malformed: {"seconds": true}'),
        ({"count": 1, "max": 1, "recent": 5}, "recent is malformed: 5"),
        ({"count": 1, "max": 1, "recent": {"seconds": 5, "drop": -2}}, "recent drop is not a count: -2"),
    ],
)
def test_validated_refuses_a_malformed_status(bad, words):
    with pytest.raises(ValueError) as err:
        verdict.validated(bad)
    assert str(err.value) == words


def _filling(full_in, count=500, rise=2.5):
    return {**status(count=count), "trend": {"full_in": full_in, "count_per_s": rise, "seconds": 60.0}}


@pytest.mark.parametrize(
    ("full_in", "level"), [(None, "ok"), (901, "ok"), (900, "warning"), (121, "warning"), (120, "critical"), (0, "ok")]
)
def test_full_in_raises_the_verdict_before_the_first_drop(full_in, level):
    got = verdict.assess(_filling(full_in))
    assert got["verdict"] == level
    if level != "ok":
        assert got["reasons"][0].startswith(
            f"the table is full in {verdict.words(full_in)} at the current rise of 2.5 entries/s"
        )
        assert f"that make it {level}" in got["reasons"][0]


def test_words():
    assert verdict.words(42.4) == "42 s"
    assert verdict.words(250) == "4 min 10 s"
    assert verdict.words(900) == "15 min"
    assert verdict.words(3 * 3600 + 120) == "3 h 2 min"


def test_full_in_thresholds_off_and_checked():
    assert verdict.assess(_filling(60), full_in_warning=None, full_in_critical=None)["verdict"] == "ok"
    assert verdict.assess(_filling(60), full_in_critical=None)["verdict"] == "warning"
    assert verdict.thresholds(75, 90) == (75, 90, 900, 120)
    with pytest.raises(verdict.SaltInvocationError, match="full_in_warning"):
        verdict.thresholds(75, 90, 60, 120)


def test_trend_from_the_mine_is_validated():
    assert verdict.validated(_filling(30))["trend"] == {"full_in": 30, "count_per_s": 2.5, "seconds": 60.0}
    assert verdict.validated(status())["trend"] is None
    with pytest.raises(ValueError, match="trend"):
        verdict.validated({**status(), "trend": {"full_in": "soon"}})
    with pytest.raises(ValueError, match="trend"):
        verdict.validated({**status(), "trend": {"full_in": math.inf}})


def test_limit_below_the_recommendation_is_a_note():
    st = {**status(), "trend": None}
    got = verdict.checked(st, 75, 90, recommend={"max": 4000, "needs_change": True})
    assert got["verdict"] == "ok" and "below the 4000 conntrack.recommend sizes" in got["notes"][0]
    assert verdict.checked(st, 75, 90, recommend={"max": 500, "needs_change": True})["notes"] == []
    assert verdict.checked(st, 75, 90)["notes"] == []
