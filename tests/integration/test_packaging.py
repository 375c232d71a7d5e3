"""The pip route: an installed package exposes every loader type to Salt, in
the installed (wheel) and the editable (``pip install -e .``) layout, and
carries the formula.

Each layout gets a throwaway venv: the running venv's site-packages linked in
entry by entry (Salt and its dependencies, without reinstalling them) except
any copy of this project, then this project installed into it by pip. Salt
runs there from a directory outside the repository with PYTHONPATH removed
(tests/conftest.py points it at the working tree's _utils), so what loads is
what pip installed.
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import sysconfig
import textwrap
import venv
import zipfile

import pytest

from tests.conftest import REPO
from tests.support.hosts import host_root, tree_snapshot

OURS = ("saltext_conntrack", "saltext.conntrack", "__editable__.saltext_conntrack", "__editable___saltext_conntrack")
SALT_CALL = "import salt.scripts, sys; sys.argv[0] = 'salt-call'; salt.scripts.salt_call()"
SALT = "import salt.scripts, sys; sys.argv[0] = 'salt'; salt.scripts.salt_main()"

# Every loader type through Salt's own loader functions, as a minion and a
# master build them: where each file came from, and a beacon run.
LOADERS = textwrap.dedent(
    """
    import json, sys
    import salt.config, salt.loader
    conf = sys.argv[1]
    opts = salt.config.minion_config(conf + "/minion")
    opts["grains"] = salt.loader.grains(opts)
    mods = salt.loader.minion_mods(opts)
    states = salt.loader.states(opts, mods, salt.loader.utils(opts), salt.loader.serializers(opts))
    beacons = salt.loader.beacons(opts, mods)
    mopts = salt.config.master_config(conf + "/master")
    runners = salt.loader.runner(mopts, utils=salt.loader.utils(mopts))
    def origin(fun):
        return sys.modules[fun.__module__].__file__
    import saltext_conntrack.runtime
    print(json.dumps({
        "module": origin(mods["conntrack.status"]),
        "state": origin(states["conntrack.blacklisted"]),
        "beacon": origin(beacons["conntrack.beacon"]),
        "runner": origin(runners["conntrack.fleet"]),
        "core": saltext_conntrack.runtime.__file__,
        "validate": list(beacons["conntrack.validate"]([{"source": "kmsg"}])),
        "events": beacons["conntrack.beacon"]([{"source": "kmsg"}]),
    }, default=str))
    """
)


def _run(args, cwd, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{args}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _venv_without_us(path):
    venv.create(path, with_pip=False, symlinks=True)
    python = path / "bin" / "python"
    site = pathlib.Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], path).strip()
    )
    ours = tuple(name.lower().replace("-", "_") for name in OURS)
    parent = pathlib.Path(sysconfig.get_paths()["purelib"])
    for entry in parent.iterdir():
        if not entry.name.lower().replace("-", "_").startswith(ours):
            (site / entry.name).symlink_to(entry)
    return python


def _minion_conf(tmp, name, root):
    conf = tmp / name
    conf.mkdir()
    run = tmp / f"run-{name}"
    (conf / "minion").write_text(
        f"file_client: local\nroot_dir: {run}\nlog_file: {run}/minion.log\nconntrack.root: {root}\n", encoding="utf-8"
    )
    (conf / "master").write_text(f"root_dir: {run}\nlog_file: {run}/master.log\n", encoding="utf-8")
    return conf


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel CI built and checked (``CONNTRACK_WHEEL``, set by .ci/run), else one built here."""
    if os.environ.get("CONNTRACK_WHEEL"):
        return pathlib.Path(os.environ["CONNTRACK_WHEEL"])
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)], out)
    (found,) = out.glob("saltext_conntrack-*.whl")
    return found


def test_the_version_comes_from_the_git_tag(wheel):
    """The wheel's version is the checkout's: the tag, or the next minor's dev release after it.

    A clone that carries no tag (CI clones main alone) gets setuptools_scm's
    untagged form, 0.1.0.devN with N the commit count, never a made-up release.
    """
    head = _run(["git", "rev-parse", "HEAD"], REPO).strip()
    version = wheel.name.split("-")[1]
    described = subprocess.run(
        ["git", "describe", "--tags", "--long", "--match", "v[0-9]*"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if described.returncode == 0:
        tag, distance, _ = described.stdout.strip().rsplit("-", 2)
        major, minor, patch = (int(part) for part in tag[1:].split("."))
        if distance == "0":
            assert version.split("+")[0] == f"{major}.{minor}.{patch}", (version, described.stdout)
            return
        expected = (f"{major}.{minor + 1}.0", distance)
    else:
        assert "No names found" in described.stderr or "No tags" in described.stderr, described.stderr
        expected = ("0.1.0", _run(["git", "rev-list", "--count", "HEAD"], REPO).strip())
    found = re.fullmatch(r"(\d+\.\d+\.\d+)\.dev(\d+)\+g([0-9a-f]+)(\.d\d{8})?", version)
    assert found, version
    assert found.group(1, 2) == expected, (version, described.stdout, described.stderr)
    assert head.startswith(found.group(3)), (version, head)


@pytest.fixture(scope="module", params=["wheel", "editable"])
def installed(request, tmp_path_factory, wheel):
    """A venv in which pip installed this project (the built wheel, or -e)."""
    tmp = tmp_path_factory.mktemp(request.param)
    python = _venv_without_us(tmp / "venv")
    target = [str(wheel)] if request.param == "wheel" else ["-e", str(REPO)]
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", *target], tmp)
    # The real host for reads; a fixture host for the state, in test mode.
    root = host_root(tmp / "root")
    return request.param, python, tmp, _minion_conf(tmp, "conf", "/"), _minion_conf(tmp, "fixture", root), root


def test_every_loader_type_from_the_package(installed):
    layout, python, tmp, conf, _, _ = installed
    where = json.loads(_run([str(python), "-c", LOADERS, str(conf)], tmp).splitlines()[-1])
    if layout == "wheel":
        base = pathlib.Path(
            _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp).strip()
        )
        expected = {kind: base / "saltext_conntrack" / kind for kind in ("modules", "states", "beacons", "runners")}
        core = base / "saltext_conntrack" / "runtime"
    else:
        expected = {kind: REPO / f"_{kind}" for kind in ("modules", "states", "beacons", "runners")}
        core = REPO / "_utils" / "saltext_conntrack" / "runtime"
    for loader, kind in (("module", "modules"), ("state", "states"), ("beacon", "beacons"), ("runner", "runners")):
        assert pathlib.Path(where[loader]).parent == expected[kind], (layout, loader, where)
    assert pathlib.Path(where["core"]).parent == core, where
    assert where["validate"][0] is True, where
    assert isinstance(where["events"], list), where


def test_salt_call_outside_the_repo(installed):
    """`pip install` then `salt-call --local conntrack.status`, from elsewhere."""
    _, python, tmp, conf, fixture, root = installed
    out = _run([str(python), "-c", SALT_CALL, "--local", "-c", str(conf), "--out=json", "conntrack.status"], tmp)
    assert json.loads(out)["local"]["max"] > 0
    # A state from the package, in test mode on a fixture root: reports, writes nothing.
    before = tree_snapshot(root)
    out = _run(
        [
            str(python),
            "-c",
            SALT_CALL,
            "--local",
            "-c",
            str(fixture),
            "--out=json",
            "state.single",
            "conntrack.blacklisted",
            "name=nf-off",
            "names=[nf_conntrack_ftp]",
            "test=True",
        ],
        tmp,
    )
    (ret,) = json.loads(out)["local"].values()
    assert ret["result"] is None and ret["changes"], ret
    assert tree_snapshot(root) == before


def test_versions_report_shows_the_one_version(installed):
    python, tmp = installed[1:3]
    version = _run([str(python), "-c", "import saltext_conntrack; print(saltext_conntrack.__version__)"], tmp).strip()
    report = _run([str(python), "-c", SALT, "--versions-report"], tmp)
    assert "Salt Extensions" in report, report
    line = next(line for line in report.splitlines() if "saltext.conntrack" in line)
    assert line.split(":")[1].strip() == version, line


def test_paths_command_points_at_the_installed_formula(installed):
    layout, python, tmp = installed[:3]
    found = json.loads(_run([str(tmp / "venv" / "bin" / "saltext-conntrack-paths")], tmp))
    root = pathlib.Path(found["file_root"])
    if layout == "editable":
        assert root == REPO / "salt"
    else:
        assert "site-packages" in root.parts
    for rel in (
        "conntrack/init.sls",
        "conntrack/map.jinja",
        "conntrack/pillar.example",
        "reactor/conntrack_remediate.sls",
        "reactor/conntrack.conf",
    ):
        assert (root / rel).is_file(), rel
    assert _run([str(python), "-m", "saltext_conntrack", "formula-path"], tmp).strip() == found["formula"]
    assert pathlib.Path(found["pillar_example"]) == root / "conntrack" / "pillar.example"


def test_wheel_and_sdist_carry_the_formula(wheel, tmp_path):
    formula = sorted(p.relative_to(REPO / "salt").as_posix() for p in (REPO / "salt").rglob("*") if p.is_file())
    assert "conntrack/pillar.example" in formula and "reactor/conntrack.conf" in formula
    names = set(zipfile.ZipFile(wheel).namelist())
    for rel in formula:
        assert f"saltext_conntrack/formula/{rel}" in names, rel
    assert any(name.endswith(".dist-info/licenses/LICENSE") or name.endswith(".dist-info/LICENSE") for name in names)

    import tarfile

    code = f"from setuptools import build_meta; print(build_meta.build_sdist({str(tmp_path)!r}))"
    sdist = tmp_path / _run([sys.executable, "-c", code], REPO).strip().splitlines()[-1]
    with tarfile.open(sdist) as tar:
        members = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for rel in ("LICENSE", "CHANGELOG.md", *(f"salt/{rel}" for rel in formula)):
        assert rel in members, rel


def test_entry_point_maps_the_loader_directories():
    """The installed copy CI tests is the tree it tests (`make setup` reinstalls it)."""
    installed = None
    for dist in __import__("importlib.metadata").metadata.distributions(name="saltext.conntrack"):
        for file in dist.files or ():
            if str(file) == "saltext_conntrack/modules/conntrack.py":
                installed = pathlib.Path(dist.locate_file("saltext_conntrack"))
    if installed is None:
        pytest.skip("this venv has no installed (non-editable) copy; `make test` installs one")
    for kind in ("modules", "states", "beacons", "runners"):
        for path in (REPO / f"_{kind}").glob("*.py"):
            copy = installed / kind / path.name
            assert copy.is_file(), f"{copy} missing: run `pip install .` again"
            assert copy.read_bytes() == path.read_bytes(), f"{copy} differs from {path}: reinstall"


@pytest.mark.parametrize(
    "function,key", [("conntrack.status", "max"), ("conntrack.check", "verdict"), ("conntrack.recommend", "rules")]
)
def test_readme_demo_command(function, key):
    """What `make demo` runs: masterless salt-call with the repo's conf/, nothing in /etc/salt."""
    salt_call = os.path.join(os.path.dirname(sys.executable), "salt-call")
    out = _run([salt_call, "--local", "-c", "conf", "--out=json", function], REPO, timeout=120)
    assert key in json.loads(out)["local"]
