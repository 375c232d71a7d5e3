"""map.jinja's layers, rendered by the real Salt loader: defaults, OS family,
osfinger (CentOS 5's legacy ip_conntrack names) and pillar."""

import pytest

from tests.conftest import REPO

RHEL9 = {"os_family": "RedHat", "osfinger": "Rocky Linux-9"}
CENTOS5 = {"os_family": "RedHat", "osfinger": "CentOS-5"}
DEBIAN = {"os_family": "Debian", "osfinger": "Debian-12"}


@pytest.fixture
def loaders_for(make_loaders, file_roots):
    """Loaders whose grains say the given OS, one set per OS: the grains are
    set before the first execution module loads (Salt 3006/3007 copy them
    then), so no render sees another OS's grains."""
    made = {}

    def get(grains):
        key = tuple(sorted(grains.items()))
        if key not in made:
            loaders = make_loaders("/", file_roots=file_roots)
            loaders.grains.update(grains)  # opts["grains"]; no module is loaded yet
            made[key] = loaders
        return made[key]

    return get


@pytest.fixture
def render(loaders_for):
    def show(grains, sls, pillar=None):
        return loaders_for(grains).modules.state.show_sls(sls, pillar=pillar or {})

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
    import yaml

    from tests.conftest import REPO as repo

    sls = "\n".join(p.read_text(encoding="utf-8") for p in (repo / "salt" / "conntrack").glob("*.sls"))
    layers = [yaml.safe_load((repo / "salt/conntrack/defaults.yaml").read_text())["conntrack"]]
    for name in ("osfamilymap.yaml", "osmap.yaml"):
        layers.extend(yaml.safe_load((repo / "salt/conntrack" / name).read_text()).values())
    for layer in layers:
        for key in layer:
            assert f"conntrack.{key}" in sls, f"map value {key!r} is used by no SLS"


FAMILIES = {
    "Debian-12": {"os_family": "Debian", "os": "Debian", "osfinger": "Debian-12"},
    "Ubuntu-24.04": {"os_family": "Debian", "os": "Ubuntu", "osfinger": "Ubuntu-24.04"},
    "Rocky Linux-9": {"os_family": "RedHat", "os": "Rocky", "osfinger": "Rocky Linux-9"},
    "CentOS-5": {"os_family": "RedHat", "os": "CentOS", "osfinger": "CentOS-5"},
    "SLES-15": {"os_family": "Suse", "os": "SUSE", "osfinger": "SLES-15"},
    "Arch": {"os_family": "Arch", "os": "Arch", "osfinger": "Arch"},
    "Alpine-3.20": {"os_family": "Alpine", "os": "Alpine", "osfinger": "Alpine-3.20"},
}
MODERN = ["nf_conntrack", "xt_state", "xt_conntrack", "xt_CT", "nf_nat", "iptable_nat"]
LEGACY = [
    "ip_conntrack",
    "ip_conntrack_ftp",
    "ip_conntrack_netbios_ns",
    "ipt_state",
    "ip_nat",
    "iptable_nat",
    "ip_nat_ftp",
]
RHEL_RULES = ["/etc/sysconfig/iptables", "/etc/sysconfig/ip6tables"]
# What each OS must get, with pillar.example as its pillar: blacklist, saved
# rules files disable.sls strips, the iptables-config token (None: no file).
PER_OS = {
    "Debian-12": (MODERN, ["/etc/iptables/rules.v4", "/etc/iptables/rules.v6"], None),
    "Ubuntu-24.04": (MODERN, ["/etc/iptables/rules.v4", "/etc/iptables/rules.v6"], None),
    "Rocky Linux-9": (
        MODERN[:1] + ["nf_conntrack_ipv4", "nf_conntrack_ipv6"] + MODERN[1:],
        RHEL_RULES,
        ".nf_conntrack",
    ),
    "CentOS-5": (LEGACY, RHEL_RULES, ".ip_conntrack"),
    "SLES-15": (MODERN, [], None),
    "Arch": (MODERN, ["/etc/iptables/iptables.rules", "/etc/iptables/ip6tables.rules"], None),
    "Alpine-3.20": (MODERN, ["/etc/iptables/rules-save", "/etc/iptables/rules6-save"], None),
}
SLS = sorted(
    "conntrack" if p.stem == "init" else f"conntrack.{p.stem}" for p in (REPO / "salt/conntrack").glob("*.sls")
)


def _example():
    import yaml

    return yaml.safe_load((REPO / "salt/conntrack/pillar.example").read_text(encoding="utf-8"))


@pytest.mark.parametrize("osfinger", sorted(FAMILIES))
def test_pillar_example_as_is_keeps_the_per_os_values(render, osfinger):
    """Every SLS renders the same with pillar.example as the pillar as with no
    pillar, and the per-OS values are there."""
    grains = FAMILIES[osfinger]
    example = _example()
    assert len(SLS) == 9, SLS  # a new SLS: add its per-OS checks here
    # One render of every SLS at once (the IDs are unique across them).
    rendered = render(grains, ",".join(SLS), example)
    assert isinstance(rendered, dict), rendered
    assert {value["__sls__"] for value in rendered.values()} >= set(SLS) - {
        "conntrack.notrack",
        "conntrack.iptables_config",
    }
    assert rendered == render(grains, ",".join(SLS)), osfinger

    assert args_of(rendered, "conntrack-alert-rules")["name"] == example["conntrack"]["alert_rules"]["path"]
    modules, rules, token = PER_OS[osfinger]
    for sid in ("conntrack-blacklisted", "conntrack-disable-blacklisted"):
        assert args_of(rendered, sid)["names"] == modules, (osfinger, sid)
    assert [sid[len("conntrack-stateless-") :] for sid in rendered if sid.startswith("conntrack-stateless-")] == rules
    if token is None:
        assert not any(sid.startswith("conntrack-iptables-config-") for sid in rendered), osfinger
    else:
        off = render(
            grains, "conntrack.iptables_config", {"conntrack": {**example["conntrack"], "survive_reload": False}}
        )
        assert args_of(off, IPT)["settings"]["IPTABLES_SYSCTL_LOAD_LIST"] == token


def test_pillar_example_documents_every_key():
    import yaml

    text = (REPO / "salt/conntrack/pillar.example").read_text(encoding="utf-8")
    defaults = yaml.safe_load((REPO / "salt/conntrack/defaults.yaml").read_text(encoding="utf-8"))["conntrack"]
    keys = [(top, None) for top in defaults] + [
        (top, sub) for top, value in defaults.items() if isinstance(value, dict) for sub in value
    ]
    lines = [line.split("#", 1)[1] if line.lstrip().startswith("#") else line for line in text.splitlines()]
    for top, sub in keys:
        assert any(line.strip().startswith(f"{sub or top}:") for line in lines), f"{top}:{sub} not in pillar.example"


@pytest.mark.parametrize(
    "pillar,named",
    [
        ({"conntrack": {"maxx": 5}}, "conntrack:maxx"),
        ({"conntrack": {"blacklist": {"hardd": True}}}, "conntrack:blacklist:hardd"),
        ({"conntrack": {"lookup": {"disable": {"stateles_files": []}}}}, "conntrack:lookup:disable:stateles_files"),
        (
            {"conntrack": {"remediate": ["threshold", 90]}},
            'conntrack:remediate must be a mapping (keys cap, hash_ratio, interval, persist, threshold), not ["threshold", 90]',
        ),
    ],
)
def test_unknown_pillar_key_fails_the_render_by_name(render, pillar, named):
    out = render(DEBIAN, "conntrack", pillar)
    assert not isinstance(out, dict) or not any(k.startswith("conntrack-") for k in out), out
    text = str(out)
    assert named in text, text
    assert "OrderedDict" not in text, text
