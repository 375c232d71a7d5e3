"""saltext_conntrack.common.numbers: the one number rule, and how values are shown."""

import collections
import math

import pytest
from salt.exceptions import SaltInvocationError

from saltext_conntrack.common import numbers


@pytest.mark.parametrize("bad", [-1, 1.0, 5.0, "1e3", "0x10", " 5; rm -rf /", None, [1], True, "1_0", "５"])
def test_integer_refuses(bad):
    with pytest.raises(SaltInvocationError):
        numbers.integer(bad, "max", 1, 100)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(42, 42), ("42", 42), (" 7 ", 7), ("0100", 100), (1, 1), (100, 100)],
)
def test_integer_accepts(value, expected):
    got = numbers.integer(value, "max", 1, 100)
    assert got == expected
    assert type(got) is int


@pytest.mark.parametrize("bad", ["\t7", "7\n", "+7", "-7", "1" * 20, "", " "])
def test_integer_refuses_text_a_shell_or_kernel_reads_otherwise(bad):
    with pytest.raises(SaltInvocationError) as err:
        numbers.integer(bad, "max", 0, 10**20)
    assert str(err.value) == f"max must be a whole number from 0 to {10**20}, got {bad!r}"


def test_integer_nineteen_digits_is_the_longest_string():
    assert numbers.integer("9" * 19, "max", 0, 10**19) == 10**19 - 1


def test_integer_out_of_range_names_the_argument_and_the_range():
    with pytest.raises(SaltInvocationError) as err:
        numbers.integer(101, "hashsize", 1, 100)
    assert str(err.value) == "hashsize must be a whole number from 1 to 100, got 101"
    with pytest.raises(SaltInvocationError) as err:
        numbers.integer("0", "hashsize", 1, 100)
    assert str(err.value) == "hashsize must be a whole number from 1 to 100, got 0"
    with pytest.raises(SaltInvocationError) as err:
        numbers.integer(True, "hashsize", 1, 100)
    assert str(err.value) == "hashsize must be a whole number from 1 to 100, got True"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2.5", 2.5), ("3", 3), (" 80 ", 80), (80.5, 80.5), (0, 0), ("100.0", 100.0)],
)
def test_number_accepts(value, expected):
    got = numbers.number(value, "warning", 0, 100)
    assert got == expected
    assert type(got) is type(expected)


@pytest.mark.parametrize(
    "bad", [math.nan, math.inf, -math.inf, "nan", "inf", "1e2", ".5", "5.", "-1", True, False, None, "1,5", [50]]
)
def test_number_refuses(bad):
    with pytest.raises(SaltInvocationError, match="^warning must be a number from 0 to 100, got "):
        numbers.number(bad, "warning", 0, 100)


def test_number_out_of_range():
    with pytest.raises(SaltInvocationError) as err:
        numbers.number(100.5, "warning", 0, 100)
    assert str(err.value) == "warning must be a number from 0 to 100, got 100.5"


def test_boolean_takes_only_real_bools():
    assert numbers.boolean(True, "force") is True
    assert numbers.boolean(False, "force") is False
    for bad in ("true", "false", "ture", 1, 0, None):
        with pytest.raises(SaltInvocationError) as err:
            numbers.boolean(bad, "force")
        assert str(err.value) == f"force must be true or false, got {bad!r}"


def test_text_bounds_nul_and_pattern():
    import re

    assert numbers.text("eth0", "iface", 15) == "eth0"
    assert numbers.text("a" * 15, "iface", 15) == "a" * 15
    with pytest.raises(SaltInvocationError) as err:
        numbers.text("a" * 16, "iface", 15)
    assert str(err.value) == "iface is 16 characters long; at most 15 are accepted"
    with pytest.raises(SaltInvocationError) as err:
        numbers.text("eth\x000", "iface", 15)
    assert str(err.value) == "iface must be a string without NUL bytes, got 'eth\\x000'"
    with pytest.raises(SaltInvocationError) as err:
        numbers.text(5, "iface", 15)
    assert str(err.value) == "iface must be a string without NUL bytes, got 5"
    pattern = re.compile(r"[a-z0-9]+")
    assert numbers.text("eth0", "iface", 15, pattern) == "eth0"
    with pytest.raises(SaltInvocationError) as err:
        numbers.text("eth0;ls", "iface", 15, pattern)
    assert str(err.value) == "iface is not accepted (expected [a-z0-9]+): 'eth0;ls'"


def test_shown_writes_mappings_as_json_and_bounds_the_length():
    assert numbers.shown(collections.OrderedDict([("a", 1), ("b", [2])])) == '{"a": 1, "b": [2]}'
    assert numbers.shown(("x", None)) == '["x", null]'
    assert numbers.shown("tcp") == "'tcp'"
    assert numbers.shown(5.0) == "5.0"
    long = numbers.shown("x" * 200)
    assert len(long) == 80
    assert long == "'" + "x" * 38 + "\u2026" + "x" * 39 + "'"  # cut in the middle: both ends stay
    assert numbers.shown(list(range(5)), limit=10) == "[0, \u20263, 4]"


def test_shown_falls_back_to_repr_for_unjsonable_keys():
    assert numbers.shown({(1, 2): "v"}) == "{(1, 2): 'v'}"
