"""The conntrack beacon's options: parsed, checked and typed once per distinct config.

The beacon's docstring is the user documentation of every option; this module
is its one rule. ``parse`` turns Salt's config list into ``Options`` or raises
``ValueError`` (or Salt's argument errors) with a sentence an operator can act
on; ``validate`` says the same as ``(ok, message)``.
"""

import dataclasses
import os
import re
import stat

from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.common import numbers, paths

DEFAULTS = {
    "source": "auto",
    "min_interval": 60,
    "incident_gap": 120,
    "usage_warning": 75,
    "usage_critical": 90,
    "hysteresis": 5,
    "drops": True,
    "status_interval": 5,
    "persist": True,
    "max_read": 16 * 2**20,
    "drift_interval": 300,
    "olddir": None,
    "full_in_warning": 900,
    "full_in_critical": 120,
}
# Keys Salt itself reads from every beacon's config.
SALT_KEYS = frozenset(("interval", "enabled", "run_once", "disable_during_state_run", "beacon_module", "_beacon_name"))
# Seconds options (0 to a day) and whether 0 is allowed; thresholds are percent, null turns one off.
SECONDS = {"min_interval": True, "incident_gap": False, "status_interval": True, "drift_interval": True}
PERCENT = ("usage_warning", "usage_critical")
FULL_IN = ("full_in_warning", "full_in_critical")  # seconds to full at the current rise, null turns one off
CACHE_MAX = 16  # distinct configs remembered
ERRORS = (ValueError, SaltInvocationError, CommandExecutionError)


@dataclasses.dataclass(frozen=True)
class Options:
    """One beacon's options, checked; ``name`` is the beacon's, made safe for a file name."""

    source: str
    min_interval: float
    incident_gap: float
    usage_warning: float | None
    usage_critical: float | None
    hysteresis: float
    drops: bool
    status_interval: float
    persist: bool
    max_read: int
    drift_interval: float
    olddir: str | None
    full_in_warning: float | None
    full_in_critical: float | None
    name: str


def _above_zero(value, name, high, allow_none=False):
    if value is None and allow_none:
        return None
    value = numbers.number(value, name, 0, high)
    if value == 0:
        raise ValueError(f"{name} must be above 0, got 0")
    return value


def _source(value, root):
    """``auto``/``kmsg``/``journal``, or an operator's path resolved under conntrack.root."""
    numbers.text(value, "source", paths.PATH_MAX)
    if value in ("auto", "kmsg", "journal"):
        return value
    if not value.startswith("/"):
        raise ValueError(f"source must be auto, kmsg, journal or an absolute log file path, got {numbers.shown(value)}")
    real = paths.resolve(root, value, "source")
    try:
        st = os.stat(real)
    except OSError:
        return real  # a log file that is not there yet: the beacon waits for it
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(
            f"source {numbers.shown(value)} is {paths.kind(st)}, not a regular file: give a log file such as "
            "/var/log/kern.log, or kmsg or journal"
        )
    return real


def _olddir(value, root, source):
    """The directory logrotate's ``olddir`` moves a file source's copies to, resolved under conntrack.root."""
    if value is None:
        return None
    numbers.text(value, "olddir", paths.PATH_MAX)
    if source in ("auto", "kmsg", "journal"):
        raise ValueError(f"olddir is for a log file source, not source {source}")
    if not value.startswith("/"):
        raise ValueError(f"olddir must be an absolute directory path, got {value!r}")
    real = paths.resolve(root, value, "olddir")
    if os.path.exists(real) and not os.path.isdir(real):
        raise ValueError(f"olddir {value} is not a directory")
    return real


def _thresholds_in_order(conf):
    warning, critical, hysteresis = conf["usage_warning"], conf["usage_critical"], conf["hysteresis"]
    if warning is not None and critical is not None and warning > critical:
        raise ValueError(f"usage_warning ({warning}) must not be above usage_critical ({critical})")
    lowest = warning if warning is not None else critical
    if lowest is not None and hysteresis >= lowest:
        raise ValueError(f"hysteresis ({hysteresis}) must be below the lowest usage threshold ({lowest})")
    soon, sooner = conf["full_in_warning"], conf["full_in_critical"]
    if soon is not None and sooner is not None and soon < sooner:
        raise ValueError(f"full_in_warning ({soon}) must not be below full_in_critical ({sooner})")


def _options(given, root, default_name):
    conf = {**DEFAULTS, **{k: v for k, v in given.items() if k in DEFAULTS}}
    conf["source"] = _source(conf["source"], root)
    conf["olddir"] = _olddir(conf["olddir"], root, conf["source"])
    for key, zero in SECONDS.items():
        conf[key] = numbers.number(conf[key], key, 0, 86400) if zero else _above_zero(conf[key], key, 86400)
    for key in PERCENT:
        conf[key] = _above_zero(conf[key], key, 100, allow_none=True)
    for key in FULL_IN:
        conf[key] = _above_zero(conf[key], key, 10**8, allow_none=True)
    conf["hysteresis"] = numbers.number(conf["hysteresis"], "hysteresis", 0, 100)
    for key in ("drops", "persist"):
        conf[key] = numbers.boolean(conf[key], key)
    conf["max_read"] = numbers.integer(conf["max_read"], "max_read (bytes)", 4096, 2**31)
    _thresholds_in_order(conf)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(given.get("_beacon_name") or default_name))[:100]
    return Options(**conf, name=name)


def parse(config, root, default_name):
    """Config list -> ``Options`` with defaults; ValueError (or Salt's argument errors) with an operator's sentence."""
    if not isinstance(config, list):
        raise ValueError(
            "configuration for the conntrack beacon must be a list of one-key dicts, "
            f"e.g. [{{'source': 'kmsg'}}, {{'interval': 5}}], got {type(config).__name__}"
        )
    given = {}
    for item in config:
        if not isinstance(item, dict):
            raise ValueError(f"every item of the conntrack beacon config must be a dict, got {numbers.shown(item)}")
        given.update(item)
    unknown = sorted(map(str, set(given) - set(DEFAULTS) - SALT_KEYS))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(numbers.clip(u, 60) for u in unknown)}"
            + f"; known: {', '.join(sorted(DEFAULTS))} "
            f"and Salt's {', '.join(sorted(SALT_KEYS - {'_beacon_name'}))}"
        )
    return _options(given, root, default_name)


def parsed(config, root, default_name, cache):
    """``parse`` once per distinct config and root (``cache``: a dict the caller keeps between runs).

    Salt validates before every run, and checking the path each time would
    cost most of an idle run.
    """
    key = (repr(config), root)
    conf = cache.get(key)
    if conf is None:
        conf = parse(config, root, default_name)
        if len(cache) >= CACHE_MAX:
            cache.clear()
        cache[key] = conf
    return conf


def validate(config, root, default_name, cache):
    """``(True, message)`` or ``(False, reason)`` for a beacon config, through ``parsed``."""
    try:
        parsed(config, root, default_name, cache)
    except ERRORS as err:
        return False, f"conntrack beacon: {err}"
    return True, "Valid beacon configuration"
