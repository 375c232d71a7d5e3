"""The beacon's options (``logwatch.options``): what validate refuses and accepts.

Moved from tests/unit/test_beacon_parsing.py (its sections); ``env`` is
``tests.support.beacon_env.Env`` (the beacon file loaded with stand-in dunders).
"""

import os

import pytest

from saltext_conntrack.logwatch import options
from tests.support.beacon_env import full, only_full


@pytest.mark.parametrize(
    "config,why",
    [
        ({"source": "kmsg"}, "must be a list"),
        (["kmsg"], "must be a dict"),
        ([{"sorce": "kmsg"}], "unknown option(s) sorce"),
        ([{"source": "var/log/messages"}], "absolute log file path"),
        ([{"source": "/var/log"}], "is a directory"),
        ([{"source": 3}], "source must be"),
        ([{"min_interval": -1}], "min_interval must be a number from 0 to 86400"),
        ([{"min_interval": "soon"}], "min_interval must be a number"),
        ([{"min_interval": float("nan")}], "min_interval must be a number"),
        ([{"usage_warning": float("nan")}], "usage_warning must be a number"),
        ([{"usage_critical": float("inf")}], "usage_critical must be a number"),
        ([{"incident_gap": "1_000"}], "incident_gap must be a number"),
        ([{"status_interval": "\uff15"}], "status_interval must be a number"),
        ([{"source": "/var/log/kern\x00.log"}], "without NUL"),
        ([{"source": "/var/log/../../etc/passwd"}], "must not contain '..'"),
        ([{"source": "/" + "a" * 5000}], "characters long"),
        ([{"incident_gap": 0}], "incident_gap must be above 0"),
        ([{"usage_warning": 120}], "usage_warning must be a number from 0 to 100"),
        ([{"usage_warning": 0}], "usage_warning must be above 0"),
        ([{"usage_warning": 95}, {"usage_critical": 90}], "must not be above usage_critical"),
        ([{"usage_warning": 4}, {"hysteresis": 5}], "hysteresis (5) must be below"),
        ([{"drops": "yes"}], "drops must be true or false"),
        ([{"persist": 1}], "persist must be true or false"),
        ([{"olddir": "/var/log/old"}], "olddir is for a log file source"),
        ([{"source": "/var/log/kern.log"}, {"olddir": "old"}], "olddir must be an absolute directory path"),
        ([{"source": "/var/log/kern.log"}, {"olddir": "/var/../../etc"}], "must not contain '..'"),
        ([{"max_read": 10}], "max_read (bytes) must be a whole number from 4096"),
        ([{"max_read": 5000.0}], "max_read (bytes) must be a whole number"),
        ([{"usage_critical": True}], "usage_critical must be a number"),
    ],
)
def test_validate_refuses(env, config, why):
    ok, message = env.mod.validate(config)
    assert ok is False
    assert why in message and message.startswith("conntrack beacon: ")


@pytest.mark.parametrize(
    "config",
    [
        [],
        [{"source": "auto"}, {"interval": 5}, {"enabled": True}],
        [{"source": "/var/log/kern.log"}, {"min_interval": 0}, {"usage_warning": None}],
        [{"usage_warning": None}, {"usage_critical": None}, {"drops": False}, {"persist": False}],
        [{"beacon_module": "conntrack"}, {"disable_during_state_run": True}, {"run_once": False}],
    ],
)
def test_validate_accepts(env, config):
    assert env.mod.validate(config) == (True, "Valid beacon configuration")


def test_auto_without_any_log_says_what_to_do(env, monkeypatch):
    os.makedirs(env.mod.__opts__["conntrack.root"], exist_ok=True)
    with pytest.raises(RuntimeError, match="set source to a log file"):
        env.mod.beacon([{"source": "auto"}])


def test_source_path_is_resolved_under_the_root(env, tmp_path):
    outside = tmp_path / "outside.log"
    outside.write_text("")
    os.symlink(outside, env.log)
    ok, why = env.mod.validate([{"source": "/var/log/kern.log"}])
    assert ok is False and "outside" in why and "conntrack.root" in why
    os.unlink(env.log)
    env.log.write_text("")
    env.run()
    env.append(full(1))
    assert only_full(env.run())["source"] == os.path.realpath(env.log)


def test_options_are_typed_and_defaulted(tmp_path):
    conf = options.parse([{"source": "kmsg"}, {"usage_warning": None}], str(tmp_path), "conntrack")
    assert isinstance(conf, options.Options)
    assert (conf.source, conf.usage_warning, conf.usage_critical, conf.name) == ("kmsg", None, 90, "conntrack")
    assert options.validate([{"hysteresis": 95}], str(tmp_path), "conntrack", {}) == (
        False,
        "conntrack beacon: hysteresis (95) must be below the lowest usage threshold (75)",
    )


@pytest.mark.parametrize("make", ["fifo", "socket"])
def test_a_source_that_is_not_a_regular_file_is_refused(env, make):
    """Class: files that are not regular. Before: a FIFO was accepted and the first run hung the main loop."""
    import socket

    if os.path.exists(env.log):
        os.unlink(env.log)
    if make == "fifo":
        os.mkfifo(env.log)
    else:
        socket.socket(socket.AF_UNIX).bind(str(env.log))
    ok, why = env.mod.validate([{"source": "/var/log/kern.log"}])
    assert ok is False and "not a regular file" in why, why


def test_a_fifo_swapped_in_after_validate_does_not_hang_a_run(env):
    env.log.write_text("")
    env.run()
    os.unlink(env.log)
    os.mkfifo(env.log)
    import signal

    def hung(*_):
        raise TimeoutError("the run blocked on the FIFO")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)  # before: open(O_RDONLY) of the FIFO blocked the run (the minion's main loop) for ever
    try:
        env.run()
        env.run()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_device_source_is_refused(env):
    import stat

    dev = os.path.join(env.mod.__opts__["conntrack.root"], "dev")
    os.makedirs(dev, exist_ok=True)
    os.mknod(os.path.join(dev, "zero"), stat.S_IFCHR | 0o666, os.makedev(1, 5))
    ok, why = env.mod.validate([{"source": "/dev/zero"}])
    assert ok is False and "a character device, not a regular file" in why, why
