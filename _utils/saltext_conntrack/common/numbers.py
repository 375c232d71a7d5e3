"""The one number rule for every argument, option and value written to a file.

Integers: a Python int, or a string of 1 to 19 ASCII digits. Never a bool, a
float (even ``5.0``), ``1_000`` or non-ASCII digits (``int()`` takes both, a
kernel and a shell do not). Numbers (thresholds, intervals): also a finite
float or a decimal string, never NaN or an infinity.
"""

import json
import math
import re

from salt.exceptions import SaltInvocationError

DIGITS = re.compile(r"[0-9]{1,19}")
_DECIMAL = re.compile(r"[0-9]{1,19}(\.[0-9]{1,19})?")


def integer(value, name, low, high):
    """``value`` as an int in [low, high], or SaltInvocationError naming ``name``."""
    if isinstance(value, str) and DIGITS.fullmatch(value.strip(" ")):
        value = int(value.strip(" "))
    if isinstance(value, bool) or not isinstance(value, int):
        raise SaltInvocationError(f"{name} must be a whole number from {low} to {high}, got {_short(value)}")
    if not low <= value <= high:
        raise SaltInvocationError(f"{name} must be a whole number from {low} to {high}, got {value}")
    return value


def number(value, name, low, high):
    """``value`` as an int or finite float in [low, high], or SaltInvocationError."""
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip(" ")):
        text = value.strip(" ")
        value = float(text) if "." in text else int(text)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SaltInvocationError(f"{name} must be a number from {low} to {high}, got {_short(value)}")
    if not low <= value <= high:
        raise SaltInvocationError(f"{name} must be a number from {low} to {high}, got {value}")
    return value


def boolean(value, name):
    """A real bool; ``'ture'``, ``'false'`` or ``1`` are refused, not guessed."""
    if isinstance(value, bool):
        return value
    raise SaltInvocationError(f"{name} must be true or false, got {_short(value)}")


def text(value, name, max_len, pattern=None):
    """A str of at most ``max_len`` characters, no NUL, matching ``pattern`` (a compiled regex) if given."""
    if not isinstance(value, str) or "\x00" in value:
        raise SaltInvocationError(f"{name} must be a string without NUL bytes, got {_short(value)}")
    if len(value) > max_len:
        raise SaltInvocationError(f"{name} is {len(value)} characters long; at most {max_len} are accepted")
    if pattern is not None and not pattern.fullmatch(value):
        raise SaltInvocationError(f"{name} is not accepted (expected {pattern.pattern}): {_short(value)}")
    return value


def shown(value, limit=80):
    """A value as an operator wrote it: mappings and lists as JSON (Salt 3006 hands
    SLS arguments over as OrderedDict, whose repr is noise), the rest as repr."""
    if isinstance(value, (dict, list, tuple)):
        try:
            text = json.dumps(value, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    else:
        text = repr(value)
    return clip(text, limit)


def clip(text, limit=80):
    """``text`` shortened in the middle to ``limit`` characters: both ends stay readable."""
    text = str(text)
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "\u2026" + text[len(text) - (limit - 1 - head) :]


_short = shown
