"""The notrack rule renderer (``firewall.notrack``).

Moved from tests/unit/test_files_validation.py.
"""

import pytest
from salt.exceptions import SaltInvocationError

from saltext_conntrack.firewall import notrack


def test_notrack_rules_both_directions_and_validation():
    rules = notrack.rules([{"proto": "udp", "port": 53}, {"proto": "tcp", "ports": [80, 80, 443]}])
    assert rules == ["udp dport 53 notrack", "udp sport 53 notrack", "tcp dport 80 notrack",
                     "tcp sport 80 notrack", "tcp dport 443 notrack", "tcp sport 443 notrack"]  # fmt: skip
    ipt = notrack.rules({"proto": "udp", "port": 53}, "iptables")
    assert ipt == ["-A CONNTRACK_NOTRACK -p udp -m udp --dport 53 -j CT --notrack",
                   "-A CONNTRACK_NOTRACK -p udp -m udp --sport 53 -j CT --notrack"]  # fmt: skip
    script = notrack.script([{"proto": "udp", "port": 53}])
    assert script.count("priority -300") == 2
    for bad in ([{"proto": "icmp", "port": 1}], [{"proto": "udp"}], [{"proto": "udp", "port": "53; drop"}],
                [{"proto": "udp", "port": 0}], [{"proto": "udp", "port": 53, "iface": "eth0"}], []):  # fmt: skip
        with pytest.raises(SaltInvocationError):
            notrack.rules(bad)
    with pytest.raises(SaltInvocationError):
        notrack.rules([{"proto": "udp", "port": 53}], "pf")
