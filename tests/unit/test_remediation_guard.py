"""remediation.guard: the state file, the lock, the clamped clock and the baselines."""

import json
import multiprocessing

import pytest
from salt.exceptions import CommandExecutionError

from saltext_conntrack.remediation import guard


def test_state_round_trips_and_is_private(tmp_path):
    assert guard.load(str(tmp_path)) == {}
    guard.save(str(tmp_path), {"drops": {"initial": 3}, "last_remediation": 5.0})
    path = tmp_path / "conntrack" / "remediate.json"
    assert json.loads(path.read_text()) == {"drops": {"initial": 3}, "last_remediation": 5.0}
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "conntrack").stat().st_mode & 0o777 == 0o700
    assert guard.load(str(tmp_path))["drops"] == {"initial": 3}


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '"a string"'])
def test_a_malformed_state_file_counts_as_none(tmp_path, text):
    (tmp_path / "conntrack").mkdir()
    (tmp_path / "conntrack" / "remediate.json").write_text(text)
    assert guard.load(str(tmp_path)) == {}


def _hold(cachedir, ready, release):
    with guard.locked(cachedir):
        ready.set()
        release.wait(10)


def test_the_lock_is_one_holder_at_a_time(tmp_path):
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        with (
            pytest.raises(CommandExecutionError, match="cannot lock the remediation state"),
            guard.locked(str(tmp_path), timeout=0.2),
        ):
            pass
    finally:
        release.set()
        holder.join(10)
    with guard.locked(str(tmp_path), timeout=0.2):
        pass  # free again once the holder is gone


@pytest.mark.parametrize("recorded", [None, True, "yesterday", [1]])
def test_no_usable_last_remediation_is_none(recorded):
    assert guard.last_remediation({"last_remediation": recorded}, 100.0) is None


def test_a_last_remediation_in_the_future_is_clamped_to_now():
    state = {"last_remediation": 500.0}
    assert guard.last_remediation(state, 100.0) == 100.0
    assert state["last_remediation"] == 100.0
    past = {"last_remediation": 40}
    assert guard.last_remediation(past, 100.0) == 40 and past == {"last_remediation": 40}


SEEN = [{"key": "initial", "drop": 7}, {"key": "netns:9", "drop": 2}, {"key": "netns:5", "drop": None}]


def test_evaluated_calls_move_every_baseline():
    assert guard.baselines({"initial": 0, "netns:1": 4}, SEEN, evaluated=True) == {"initial": 7, "netns:9": 2}


def test_unevaluated_calls_learn_only_new_namespaces():
    assert guard.baselines({"initial": 0, "netns:1": 4}, SEEN, evaluated=False) == {
        "initial": 0,
        "netns:9": 2,
        "netns:1": 4,
    }


@pytest.mark.parametrize(
    "text",
    ['{"last_reapply": "yesterday"}', '{"last_remediation": 1e308}', '{"drops": [1]}', '{"drops": {"x": "1"}}',
     '{"drops": {"x": -1}}', "[" * 50000],
)  # fmt: skip
def test_a_corrupt_or_foreign_state_file_is_set_aside(tmp_path, text):
    """Class: own state. Before: TypeError from decide.reapply(last='yesterday'); now set aside, {}."""
    (tmp_path / "conntrack").mkdir()
    (tmp_path / "conntrack" / "remediate.json").write_text(text)
    assert guard.load(str(tmp_path)) == {}
    names = sorted(p.name for p in (tmp_path / "conntrack").iterdir())
    assert len(names) == 1 and names[0].startswith("remediate.json.corrupt-")
    guard.save(str(tmp_path), {"last_reapply": 5.0})
    assert guard.load(str(tmp_path)) == {"last_reapply": 5.0}
