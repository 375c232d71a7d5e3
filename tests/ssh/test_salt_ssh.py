"""salt-ssh against 127.0.0.1 returns what salt-call --local returns, on the
same fixture root with the same options; without the package in the thin it
fails with the reason that names the fix."""

import pytest

# Fields two runs may legitimately differ in: the history's ``recent`` and
# ``trend`` come from the samples earlier calls left in the cachedir, and each
# route has its own (the salt-ssh target's and salt-call's); diagnose's
# ``walk.seconds`` is how long that run took.
PER_RUN = {"recent", "trend", "seconds"}


def _comparable(data):
    if isinstance(data, dict):
        return {key: _comparable(value) for key, value in data.items() if key not in PER_RUN}
    if isinstance(data, list):
        return [_comparable(value) for value in data]
    return data


@pytest.mark.parametrize(
    "args",
    [("conntrack.status",), ("conntrack.check",), ("conntrack.diagnose", "walk=False")],
    ids=["status", "check", "diagnose"],
)
def test_function_equals_salt_call(salt_ssh, args):
    over_ssh = salt_ssh.ssh(*args)
    assert isinstance(over_ssh, dict), over_ssh
    assert _comparable(over_ssh) == _comparable(salt_ssh.call(*args))


def _states(ret):
    """A state run's results without what differs per run (start time,
    duration, the run's order counter ``__run_num__`` and ``__id__``)."""
    assert isinstance(ret, dict), ret
    keep = ("result", "comment", "changes", "name")
    return {tag: {key: state.get(key) for key in keep} for tag, state in ret.items()}


def test_state_apply_test_equals_salt_call(salt_ssh):
    over_ssh = salt_ssh.ssh("state.apply", "conntrack", "test=True")
    assert _states(over_ssh) == _states(salt_ssh.call("state.apply", "conntrack", "test=True"))
    assert all(state["result"] is not False for state in over_ssh.values()), over_ssh


def test_without_the_package_the_reason_names_the_fix(salt_ssh_without_package):
    ret = salt_ssh_without_package.ssh("conntrack.status")
    text = str(ret)
    assert "salt-ssh carries saltext.conntrack only where it is pip-installed on the master" in text, text
