"""map.jinja's layers, rendered by the real Salt loader: defaults, OS family,
osfinger (CentOS 5's legacy ip_conntrack names) and pillar."""

import pytest

from tests.conftest import REPO

RHEL9 = {"os_family": "RedHat", "osfinger": "Rocky Linux-9"}
CENTOS5 = {"os_family": "RedHat", "osfinger": "CentOS-5"}
DEBIAN = {"os_family": "Debian", "osfinger": "Debian-12"}


@pytest.fixture
def render(make_loaders):
    """Render an SLS for the given grains, with fresh loaders per render: the
    grains are set before the first execution module loads (Salt 3006/3007
    copy them then), so no render sees another's OS."""

    def show(grains, sls, pillar=None):
        loaders = make_loaders("/", file_roots={"base": [str(REPO / "salt"), str(REPO)]})
        loaders.grains.update(grains)  # opts["grains"]; no module is loaded yet
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

    # Remediation writes hashsize where conntrack.tuned does (the module's
    # default): no per-OS modprobe file; max auto means no target
    rem = args_of(render(CENTOS5, "conntrack.remediate"), "conntrack-remediate", "conntrack_remediate.remediate")
    assert "modprobe_file" not in rem and rem["target"] is None

    # iptables-config exists only on the RHEL family
    assert render(DEBIAN, "conntrack.iptables_config") == {}
    assert "conntrack-iptables-config-/etc/sysconfig/iptables-config" in render(RHEL9, "conntrack.iptables_config")


IPT = "conntrack-iptables-config-/etc/sysconfig/iptables-config"


def test_sysctl_load_list_has_one_owner_and_the_kernels_token(render):
    # survive_reload (default true): conntrack.tuned owns the list, as a token;
    # iptables_config.sls must not set it exactly, or the two flap.
    for grains in (RHEL9, CENTOS5):
        settings = args_of(render(grains, "conntrack.iptables_config"), IPT)["settings"]
        assert settings == {"IPTABLES_MODULES_UNLOAD": "no"}, (grains, settings)

    # Without survive_reload, iptables_config.sls sets it, with the token of
    # the OS's kernel: CentOS 5 must not inherit the family's .nf_conntrack.
    off = {"conntrack": {"survive_reload": False}}
    for grains, token in ((RHEL9, ".nf_conntrack"), (CENTOS5, ".ip_conntrack")):
        settings = args_of(render(grains, "conntrack.iptables_config", off), IPT)["settings"]
        assert settings == {"IPTABLES_MODULES_UNLOAD": "no", "IPTABLES_SYSCTL_LOAD_LIST": token}, (grains, settings)


def test_no_unused_map_values(render, make_loaders):
    import yaml  # pylint: disable=import-outside-toplevel

    from tests.conftest import REPO as repo  # pylint: disable=import-outside-toplevel

    sls = "\n".join(p.read_text(encoding="utf-8") for p in (repo / "salt" / "conntrack").glob("*.sls"))
    layers = [yaml.safe_load((repo / "salt/conntrack/defaults.yaml").read_text())["conntrack"]]
    for name in ("osfamilymap.yaml", "osmap.yaml"):
        layers.extend(yaml.safe_load((repo / "salt/conntrack" / name).read_text()).values())
    for layer in layers:
        for key in layer:
            assert f"conntrack.{key}" in sls, f"map value {key!r} is used by no SLS"
