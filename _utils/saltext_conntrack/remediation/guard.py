"""What the remediation keeps between calls, in ``<cachedir>/conntrack``: the
state file (drop baselines, the time of the last remediation and re-apply)
and the lock that lets one job process decide at a time."""

import contextlib
import errno
import fcntl
import json
import logging
import math
import os
import time

from salt.exceptions import CommandExecutionError

from saltext_conntrack.common import files, numbers

log = logging.getLogger(__name__)

STATE_FILE = "remediate.json"
LOCK_FILE = "remediate.lock"
LOCK_TIMEOUT = 30
MAX_BASELINES = 4096


def state_dir(cachedir):
    path = os.path.join(cachedir, "conntrack")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


@contextlib.contextmanager
def locked(cachedir, timeout=LOCK_TIMEOUT):
    """One decision at a time on this host, across job processes."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(os.path.join(state_dir(cachedir), LOCK_FILE), flags, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    raise CommandExecutionError(f"cannot lock the remediation state: {err}") from err
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _checked(data):
    """The state file's content with the right shape, or ValueError (the file is then set aside)."""
    if not isinstance(data, dict):
        raise ValueError(f"not a mapping but {type(data).__name__}")
    for key in ("last_remediation", "last_reapply"):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or not 0 <= value < 2**40):  # fmt: skip
            raise ValueError(f"{key} is not a time")
    drops = data.get("drops", {})
    if not isinstance(drops, dict) or len(drops) > MAX_BASELINES:
        raise ValueError(f"drops is not a mapping of at most {MAX_BASELINES} baselines")
    for key, value in drops.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
            raise ValueError(f"drop baseline {numbers.shown(key, 60)} is not a counter")
    return data


def load(cachedir):
    """The recorded state, ``{}`` when none is; a corrupt or foreign file is set aside (renamed, with
    a warning) and counts as none recorded: it never raises and never decides anything."""
    path = os.path.join(state_dir(cachedir), STATE_FILE)
    return files.load_own(path, _checked, "remediation state") or {}


def save(cachedir, data):
    directory = state_dir(cachedir)
    files.atomic_write(directory, os.path.join(directory, STATE_FILE), json.dumps(data, sort_keys=True), 0o600)


def last_remediation(state, now):
    """The recorded time of the last remediation, or None; one in the future is clamped to now."""
    last = state.get("last_remediation")
    if isinstance(last, bool) or not isinstance(last, (int, float)):
        return None
    if last > now:
        # The wall clock went back: count the interval from now, once.
        log.warning("conntrack_remediate: last remediation is %.0f s in the future; clamped", last - now)
        last = state["last_remediation"] = now
    return last


def baselines(previous, seen, evaluated):
    """The drop baselines to record after a call that read ``seen``."""
    drops = {item["key"]: item["drop"] for item in seen if item["drop"] is not None}
    if evaluated:
        return drops
    # Not looked at: keep every baseline, so the drops of this window still
    # count; only learn namespaces never seen.
    return {**drops, **previous}
