"""salt-ssh tier: a real sshd on 127.0.0.1 (tests/support/sshd.py), one
salt-ssh master configuration per session, and salt-call --local beside it.

The extension travels as a user would ship it: pip-installed on the master.
Salt 3008's thin carries every ``salt.loader`` entry-point package
(salt/utils/thin.py ``_discover_saltexts``); Salt 3006 and 3007 have no such
discovery, so their master also needs ``thin_extra_mods: saltext_conntrack``
(the core) and ``file_roots`` with ``_modules``/``_states`` (the loader
files, which salt-ssh's ext_mods tarball carries as plain files).

Without sshd, ssh or root these tests skip with the reason; with
CONNTRACK_REQUIRE_KERNEL=1 (CI) a skip is a failure instead.
"""

import filecmp
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import salt.version

from tests.support.hosts import host_root
from tests.support.sshd import Sshd, unavailable_reason

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
# Salt 3008 is the first line whose thin discovers saltext entry points.
THIN_CARRIES_SALTEXTS = salt.version.__saltstack_version__.major >= 3008
# What setup.cfg installs, by the tree's path and the installed path under the package.
INSTALLED_LAYOUT = {
    "_utils/saltext_conntrack": "",
    "_modules": "modules",
    "_states": "states",
    "_beacons": "beacons",
    "_runners": "runners",
    "salt": "formula",
}
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", *INSTALLED_LAYOUT)
SALT_SCRIPT = "import salt.scripts, sys; sys.argv[0] = {name!r}; salt.scripts.{func}()"


@pytest.fixture(scope="session", autouse=True)
def ssh_available():
    reason = unavailable_reason()
    if reason:
        if os.environ.get("CONNTRACK_REQUIRE_KERNEL"):
            pytest.fail(f"salt-ssh tests are required here but cannot run: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def sshd(ssh_available, tmp_path_factory):
    with Sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def _run(cmd, env=None, timeout=240):
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)


def _installed_copy_is_this_tree():
    """True when the venv's pip-installed package is this tree (CI's venvs
    install the wheel of the tree under test; a developer's may be older)."""
    probe = _run(
        [sys.executable, "-c", "import saltext_conntrack, os; print(os.path.dirname(saltext_conntrack.__file__))"],
        env=_env_without_checkout(),
        timeout=60,
    )
    if probe.returncode:
        return False
    installed = pathlib.Path(probe.stdout.strip())
    for source, dest in INSTALLED_LAYOUT.items():
        for path in (REPO / source).rglob("*.py"):
            copy = installed / dest / path.relative_to(REPO / source)
            if not copy.is_file() or not filecmp.cmp(path, copy, shallow=False):
                return False
    return True


def _env_without_checkout(site=None):
    """The environment of the salt-ssh master and salt-call: without the
    checkout's _utils that tests/conftest.py puts first, so the package is
    the pip-installed one (``site`` first, when given)."""
    env = dict(os.environ)
    checkout = str(REPO / "_utils")
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != checkout]
    env["PYTHONPATH"] = os.pathsep.join([site, *rest] if site else rest)
    env["PATH"] = os.pathsep.join(["/usr/sbin", "/sbin", env.get("PATH", "")])
    return env


@pytest.fixture(scope="session")
def master_env(tmp_path_factory):
    """Where the pip-installed package is: the venv's own when it is this
    tree, else this tree pip-installed (``--target``) from a copy, so that no
    build runs in the checkout while other legs read it."""
    if _installed_copy_is_this_tree():
        return _env_without_checkout()
    tmp = tmp_path_factory.mktemp("pip")
    (tmp / "src").mkdir()
    for name in SOURCES:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp / "src" / name)
    site = tmp / "site"
    # The copy has no .git for setuptools_scm to read the version from.
    env = {**os.environ, "SETUPTOOLS_SCM_PRETEND_VERSION": "0+unknown"}
    done = _run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(tmp / "src")], env=env
    )
    assert done.returncode == 0, done.stderr
    return _env_without_checkout(str(site))


@pytest.fixture(scope="session")
def fixture_root(tmp_path_factory):
    return host_root(str(tmp_path_factory.mktemp("host")))


@pytest.fixture(scope="session")
def ssh_file_roots(tmp_path_factory):
    """The formula, as tests/conftest.py's ``file_roots`` serves it; on Salt
    3006/3007 the loader files too (the file_roots route, see the docstring)."""
    root = tmp_path_factory.mktemp("ssh_file_root")
    for name in ("conntrack", "reactor"):
        (root / name).symlink_to(REPO / "salt" / name)
    return root


def _link_loader_files(root):
    for name in ("_modules", "_states"):
        if not (root / name).exists():
            (root / name).symlink_to(REPO / name)


class SaltSsh:
    """One salt-ssh master configuration (its own root_dir, cachedir, pki
    and roster) and a masterless salt-call of the same options beside it."""

    def __init__(self, path, sshd, env, file_root, conntrack_root, **master):
        self.path = pathlib.Path(path)
        self.env = env
        # Root's python3 here is a pyenv shim script, which Salt's shell shim
        # mis-handles (KeyError: 'LD_LIBRARY_PATH'): the venv's own base
        # interpreter, a real binary of the master's Python version, goes first.
        base = os.path.dirname(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
        roster = {
            "local": {
                "host": "127.0.0.1",
                "port": sshd.port,
                "user": "root",
                "priv": str(sshd.client_key),
                "set_path": os.pathsep.join([base, "/usr/sbin", "/usr/bin", "/sbin", "/bin"]),
                "thin_dir": str(self.path / "thin"),
                # The state wrapper's own file transfers read these from the roster, not the CLI.
                "ignore_host_keys": True,
                "ssh_options": ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"],
            }
        }
        common = {
            "root_dir": str(self.path),
            "cachedir": str(self.path / "cache"),
            "pki_dir": str(self.path / "pki"),
            "sock_dir": str(self.path / "sock"),
            "log_file": str(self.path / "log"),
            "file_roots": {"base": [str(file_root)]},
            "pillar_roots": {"base": [str(self.path / "pillar")]},
        }
        self.master_dir = self.path / "master"
        self.minion_dir = self.path / "minion"
        self.master_dir.mkdir(parents=True)
        self.minion_dir.mkdir()
        (self.path / "pillar").mkdir()
        (self.master_dir / "roster").write_text(json.dumps(roster), encoding="utf-8")
        (self.master_dir / "master").write_text(
            json.dumps(
                {
                    **common,
                    "roster_file": str(self.master_dir / "roster"),
                    "no_host_keys": True,
                    "ignore_host_keys": True,
                    "ssh_minion_opts": {"conntrack.root": str(conntrack_root)},
                    **master,
                }
            ),
            encoding="utf-8",
        )
        (self.minion_dir / "minion").write_text(
            json.dumps(
                {
                    **common,
                    "cachedir": str(self.path / "minion-cache"),
                    "file_client": "local",
                    "conntrack.root": str(conntrack_root),
                }
            ),
            encoding="utf-8",
        )

    def _json(self, done):
        assert done.stdout.strip(), f"no output; rc={done.returncode}, stderr: {done.stderr[-3000:]}"
        return json.loads(done.stdout)

    def ssh(self, *args, timeout=240):
        """``salt-ssh local ARGS``: the function's return, parsed (one host)."""
        cmd = [sys.executable, "-c", SALT_SCRIPT.format(name="salt-ssh", func="salt_ssh")]
        cmd += [
            "-c",
            str(self.master_dir),
            "--out=json",
            "--static",
            "--ignore-host-keys",
            "--no-host-keys",
            "local",
            *args,
        ]
        return self._json(_run(cmd, self.env, timeout))["local"]

    def call(self, *args, timeout=120):
        """``salt-call --local ARGS`` with the same options and root."""
        cmd = [sys.executable, "-c", SALT_SCRIPT.format(name="salt-call", func="salt_call")]
        cmd += ["--local", "-c", str(self.minion_dir), "--out=json", *args]
        return self._json(_run(cmd, self.env, timeout))["local"]


@pytest.fixture(scope="session")
def salt_ssh(sshd, master_env, ssh_file_roots, fixture_root, tmp_path_factory):
    """The pip route: one master per session, so the thin is built once."""
    extra = {}
    if not THIN_CARRIES_SALTEXTS:
        _link_loader_files(ssh_file_roots)
        extra["thin_extra_mods"] = "saltext_conntrack"
    return SaltSsh(tmp_path_factory.mktemp("salt-ssh"), sshd, master_env, ssh_file_roots, fixture_root, **extra)


@pytest.fixture(scope="session")
def salt_ssh_without_package(sshd, master_env, fixture_root, tmp_path_factory):
    """The file_roots route alone: the loader files travel, the package does
    not (3008: the thin skips it by blocklist; 3006/3007: no thin_extra_mods)."""
    root = tmp_path_factory.mktemp("file_roots_route")
    _link_loader_files(root)
    extra = {"thin_saltext_blocklist": ["saltext.conntrack"]} if THIN_CARRIES_SALTEXTS else {}
    return SaltSsh(tmp_path_factory.mktemp("salt-ssh-bare"), sshd, master_env, root, fixture_root, **extra)
