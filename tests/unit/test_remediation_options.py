"""remediation.options: every option checked and every path refused before anything is touched."""

import pytest
from salt.exceptions import SaltInvocationError

from saltext_conntrack.remediation import options


def check(tmp_path, **given):
    asked = []

    def default_sysctl_file():
        asked.append(True)
        return "/etc/sysctl.d/90-conntrack.conf"

    return options.check({**dict.fromkeys(options.DEFAULTS), **given}, unset, str(tmp_path), default_sysctl_file), asked


def unset(name):
    return None


def test_defaults(tmp_path):
    conf, asked = check(tmp_path)
    assert conf == {**options.DEFAULTS, "threshold": 90.0} and asked == [True]


def test_strings_are_parsed_and_auto_is_none(tmp_path):
    conf, _ = check(tmp_path, threshold="95", interval="1800", hash_ratio="4", cap="auto", target="300000")
    assert (conf["threshold"], conf["interval"], conf["hash_ratio"]) == (95.0, 1800, 4)
    assert (conf["cap"], conf["target"]) == (None, 300000)


def test_another_sysctl_file_is_not_replaced(tmp_path):
    conf, asked = check(tmp_path, sysctl_file="/etc/sysctl.d/99-other.conf")
    assert conf["sysctl_file"] == "/etc/sysctl.d/99-other.conf" and asked == []


@pytest.mark.parametrize(
    "given, message",
    [
        ({"threshold": 0}, "threshold"),
        ({"interval": -1}, "interval"),
        ({"hash_ratio": 65}, "hash_ratio"),
        ({"cap": 0}, "cap"),
        ({"target": "lots"}, "target"),
        ({"persist": "yes"}, "persist must be true or false"),
        ({"sysctl_file": "/etc/passwd"}, "sysctl file must be"),
        ({"modprobe_file": "/etc/profile"}, "modprobe file must be"),
    ],
)
def test_bad_options_are_refused(tmp_path, given, message):
    with pytest.raises(SaltInvocationError, match=message):
        check(tmp_path, **given)


def test_arguments_win_over_configured_values_over_defaults():
    configured = {"interval": 60}.get
    assert options.pick("interval", 5, configured) == 5
    assert options.pick("interval", None, configured) == 60
    assert options.pick("threshold", None, configured) == 90
    assert options.pick("persist", False, configured) is False


def test_interval():
    assert options.interval("60") == 60
    with pytest.raises(SaltInvocationError, match="interval"):
        options.interval(10**10)
