"""map.jinja's layers, rendered by the real Salt loader: defaults, OS family,
osfinger (CentOS 5's legacy ip_conntrack names) and pillar."""

import pytest

from tests.conftest import REPO

RHEL9 = {"os_family": "RedHat", "osfinger": "Rocky Linux-9"}
CENTOS5 = {"os_family": "RedHat", "osfinger": "CentOS-5"}
DEBIAN = {"os_family": "Debian", "osfinger": "Debian-12"}


@pytest.fixture
def render(make_loaders):
    loaders = make_loaders("/", file_roots={"base": [str(REPO / "salt"), str(REPO)]})

    def show(grains, sls, pillar=None):
        loaders.grains.update(grains)  # the loaded modules share this dict
        return loaders.modules.state.show_sls(sls, pillar=pillar or {})

    return show


def args_of(data, sid, fun=None):
    body = next(iter(data[sid][k] for k in data[sid] if not k.startswith("__")))
    if fun:
        body = next(a[fun] for a in body if isinstance(a, dict) and fun in a)
    return {k: v for a in body if isinstance(a, dict) for k, v in a.items()}


def test_layers(render):
    for grains, expected, absent in (
        (RHEL9, "nf_conntrack_ipv4", "ip_conntrack"),
        (CENTOS5, "ip_conntrack", "nf_conntrack"),
        (DEBIAN, "nf_conntrack", "ip_conntrack"),
    ):
        names = args_of(render(grains, "conntrack.blacklist"), "conntrack-blacklisted")["names"]
        assert expected in names and absent not in names, (grains, names)

    # pillar wins over the OS layers
    pillar = {"conntrack": {"blacklist": {"modules": ["xt_state"], "hard": False}}}
    args = args_of(render(CENTOS5, "conntrack.blacklist", pillar), "conntrack-blacklisted")
    assert args["names"] == ["xt_state"] and args["hard"] is False

    # CentOS 5 keeps module options in /etc/modprobe.conf; max auto means no target
    rem = args_of(render(CENTOS5, "conntrack.remediate"), "conntrack-remediate", "conntrack_remediate.remediate")
    assert rem["modprobe_file"] == "/etc/modprobe.conf" and rem["target"] is None

    # iptables-config exists only on the RHEL family
    assert render(DEBIAN, "conntrack.iptables_config") == {}
    assert "conntrack-iptables-config-/etc/sysconfig/iptables-config" in render(RHEL9, "conntrack.iptables_config")
