"""RHEL's ``/etc/sysconfig/ip(6)tables-config``: sourced by root's init script,
so every value is code. Values are checked against what each key can hold,
and bounded, before the plan reads the file."""

import re

from salt.exceptions import SaltInvocationError

from saltext_conntrack.common import numbers
from saltext_conntrack.persistence import plans

CONFIGS = ("/etc/sysconfig/iptables-config", "/etc/sysconfig/ip6tables-config")
_YESNO = ("MODULES_UNLOAD", "SAVE_ON_STOP", "SAVE_ON_RESTART", "SAVE_COUNTER",
          "STATUS_NUMERIC", "STATUS_VERBOSE", "STATUS_LINENUMBERS")  # fmt: skip
KEYS = {
    **dict.fromkeys(_YESNO, "yesno"),
    "MODULES": "modules",
    "SYSCTL_LOAD_LIST": "sysctl_list",
    "RESTORE_WAIT": "digits",
    "RESTORE_WAIT_INTERVAL": "digits",
}
_SYSCTL_TOKEN = re.compile(r"[A-Za-z0-9_.]{1,128}")
# A list value is a line of a shell script: a few dozen modules or sysctls at most.
MAX_VALUE = 1024
_KEY = re.compile(r"IP6?TABLES_([A-Z_]{1,40})")


def kind_of(key):
    if not isinstance(key, str):
        raise SaltInvocationError(f"iptables-config key must be a string, got {numbers.shown(key)}")
    match = _KEY.fullmatch(key)
    if not match or match.group(1) not in KEYS:
        known = ", ".join(f"IPTABLES_{k}" for k in KEYS)
        raise SaltInvocationError(
            f"unknown iptables-config key {numbers.shown(key)}; known: {known} (and IP6TABLES_ twins)"
        )
    return KEYS[match.group(1)]


def _tokens(key, value):
    if isinstance(value, str):
        numbers.text(value, key, MAX_VALUE)
        value = value.split(" ")
    if not isinstance(value, (list, tuple)):
        raise SaltInvocationError(f"{key} takes a space-separated list, got {numbers.shown(value)}")
    if len(value) > plans.MAX_ITEMS:
        raise SaltInvocationError(f"{key}: at most {plans.MAX_ITEMS} items are accepted, got {len(value)}")
    return [t for t in value if t != ""]


def valid_value(key, value):
    """The shell-safe string for ``key``, or SaltInvocationError."""
    kind = kind_of(key)
    if kind == "yesno":
        if isinstance(value, bool):  # YAML turns yes/no into booleans
            return "yes" if value else "no"
        if value in ("yes", "no"):
            return value
        raise SaltInvocationError(f"{key} takes only yes or no, got {numbers.shown(value)}")
    if kind == "digits":
        if isinstance(value, str) and not re.fullmatch(r"[0-9]{1,9}", value):
            raise SaltInvocationError(f"{key} takes only digits, got {numbers.shown(value)}")
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise SaltInvocationError(f"{key} takes only digits, got {numbers.shown(value)}")
        return str(numbers.integer(value, key, 0, 10**9 - 1))
    tokens = _tokens(key, value)
    pattern = plans.MODULE_NAME if kind == "modules" else _SYSCTL_TOKEN
    for token in tokens:
        if not isinstance(token, str) or not pattern.fullmatch(token):
            what = "module names" if kind == "modules" else "sysctl name parts (letters, digits, '_' and '.')"
            raise SaltInvocationError(f"{key} takes only {what}, got {numbers.shown(token)} in {numbers.shown(value)}")
    return numbers.text(" ".join(tokens), key, MAX_VALUE)


def _shell_value(raw):
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    return raw


def _wanted(settings, add_tokens, current):
    """Every key's value to hold: ``settings`` checked, list keys grown by ``add_tokens``."""
    settings = {} if settings is None else settings
    plans.mapping(settings, "settings", "iptables-config keys to values")
    wanted = {key: valid_value(key, value) for key, value in settings.items()}
    add_tokens = {} if add_tokens is None else add_tokens
    plans.mapping(add_tokens, "add_tokens", "list keys to tokens")
    for key, tokens in add_tokens.items():
        if kind_of(key) not in ("modules", "sysctl_list"):
            raise SaltInvocationError(f"{key} is not a list key")
        tokens = _tokens(key, tokens)
        valid_value(key, tokens)
        have = (wanted[key] if key in wanted else current.get(key, "")).split()
        wanted[key] = valid_value(key, have + [t for t in tokens if t not in have])
    return wanted


def plan(root, settings, path=CONFIGS[0], add_tokens=None):
    """Hold each key as ``KEY="value"``: an active line rewritten in place unless it
    already holds the value, else a commented default replaced, else appended."""
    real, text, exists = plans.read(root, path, "iptables-config")
    lines = plans.lines(text)
    current = {}
    for line in lines:
        match = re.match(r"^([A-Z0-9_]+)=(.*)$", line.rstrip("\n"))
        if match:
            current[match.group(1)] = _shell_value(match.group(2))
    changes = {}
    for key, value in _wanted(settings, add_tokens, current).items():
        new_line = f'{key}="{value}"'
        active = [i for i, line in enumerate(lines) if line.startswith(f"{key}=")]
        if active:
            if all(_shell_value(lines[i].rstrip("\n").split("=", 1)[1]) == value for i in active):
                continue  # already holds the value (quoted or not): the line stays as it is
            changes[key] = {"old": current.get(key), "new": value}
            for i in active:
                lines[i] = plans.same_end(new_line, lines[i])
            continue
        changes[key] = {"old": None, "new": value}
        commented = [i for i, line in enumerate(lines) if re.match(rf"^#\s*{key}=", line)]
        if commented:
            lines[commented[0]] = plans.same_end(new_line, lines[commented[0]])
        else:
            lines.append(new_line + "\n")
    return plans.plan(path, real, text, plans.joined(lines), exists, changes, mode=0o600)
