"""saltext_conntrack.common.paths: every host path under one root, links resolved."""

import os

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.common import paths


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        ({}, "/"),
        ({"conntrack.root": ""}, "/"),
        ({"conntrack.root": None}, "/"),
        ({"conntrack.root": "/srv/r"}, "/srv/r"),
    ],
)
def test_root_of(opts, expected):
    assert paths.root_of(opts) == expected


def test_join_puts_absolute_and_relative_paths_under_the_root():
    assert paths.join("/r", "/proc/net/stat/nf_conntrack") == "/r/proc/net/stat/nf_conntrack"
    assert paths.join("/r", "proc/modules") == "/r/proc/modules"
    assert paths.join("/", "/etc/sysctl.conf") == "/etc/sysctl.conf"


def test_host_joins_a_checked_path():
    assert paths.host("/r", "/etc/sysctl.d/90-ct.conf") == "/r/etc/sysctl.d/90-ct.conf"
    # ".." only as a whole component is a step up
    assert paths.host("/r", "/etc/a..b/...") == "/r/etc/a..b/..."


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("etc/sysctl.conf", "file must be an absolute path, got 'etc/sysctl.conf'"),
        ("", "file must be an absolute path, got ''"),
        (None, "file must be an absolute path, got None"),
        (b"/etc/x", "file must be an absolute path, got b'/etc/x'"),
        ("/etc/x\x00y", "file must be an absolute path, got '/etc/x\\x00y'"),
        ("/etc/../shadow", "file must not contain '..', got '/etc/../shadow'"),
        ("/..", "file must not contain '..', got '/..'"),
    ],
)
def test_host_refuses(bad, words):
    with pytest.raises(SaltInvocationError) as err:
        paths.host("/r", bad, "file")
    assert str(err.value) == words


def test_host_refuses_a_path_longer_than_path_max():
    long = "/" + "a" * paths.PATH_MAX
    with pytest.raises(SaltInvocationError) as err:
        paths.host("/r", long, "file")
    assert str(err.value).startswith(f"file is {len(long)} characters long, at most {paths.PATH_MAX}: '/aaa")
    assert str(err.value).endswith("aaa'") and "\u2026" in str(err.value)
    assert paths.host("/r", long[:-1]) == "/r" + long[:-1]


@pytest.fixture
def root(tmp_path):
    top = tmp_path / "root"
    (top / "etc/sysctl.d").mkdir(parents=True)
    (top / "etc/sysctl.conf").write_text("")
    (tmp_path / "outside.conf").write_text("")
    (tmp_path / "rootsibling").mkdir()
    return os.path.realpath(top)


def test_contained_resolves_links_inside_the_root(root):
    os.symlink("../sysctl.conf", os.path.join(root, "etc/sysctl.d/99-sysctl.conf"))
    joined = paths.join(root, "/etc/sysctl.d/99-sysctl.conf")
    assert paths.contained(root, joined) == os.path.join(root, "etc/sysctl.conf")
    # a file that does not exist yet resolves to itself
    assert paths.contained(root, paths.join(root, "/etc/new.conf")) == os.path.join(root, "etc/new.conf")


def test_contained_refuses_a_link_out_of_the_root(root):
    link = os.path.join(root, "etc/sysctl.d/90-out.conf")
    os.symlink(os.path.join(os.path.dirname(root), "outside.conf"), link)
    with pytest.raises(CommandExecutionError) as err:
        paths.contained(root, link)
    outside = os.path.join(os.path.dirname(root), "outside.conf")
    assert str(err.value) == f"{link} resolves to {outside}, outside {root} (conntrack.root): refused"


def test_contained_compares_components_not_prefixes(root):
    # /tmp/x/rootsibling starts with the text /tmp/x/root but is not under it
    link = os.path.join(root, "etc/sideways")
    os.symlink(os.path.join(os.path.dirname(root), "rootsibling"), link)
    with pytest.raises(CommandExecutionError, match="outside"):
        paths.contained(root, os.path.join(link, "f.conf"))


def test_contained_resolves_a_root_that_is_itself_a_link(root, tmp_path):
    alias = tmp_path / "alias"
    os.symlink(root, alias)
    assert paths.contained(str(alias), paths.join(str(alias), "/etc/sysctl.conf")) == os.path.join(
        root, "etc/sysctl.conf"
    )


def test_contained_under_slash_accepts_any_path():
    assert paths.contained("/", "/etc") == os.path.realpath("/etc")


def test_resolve_checks_then_contains(root):
    os.symlink("/../../../../../../etc/passwd", os.path.join(root, "etc/sysctl.d/a.conf"))
    assert paths.resolve(root, "/etc/sysctl.conf") == os.path.join(root, "etc/sysctl.conf")
    with pytest.raises(SaltInvocationError):
        paths.resolve(root, "/etc/../etc/sysctl.conf")
    with pytest.raises(CommandExecutionError, match="outside"):
        paths.resolve(root, "/etc/sysctl.d/a.conf")


def test_a_link_another_user_owns_is_never_followed(tmp_path):
    """Class: written through a link. The prometheus user's link to /etc/shadow is refused."""
    root = str(tmp_path / "root")
    os.makedirs(os.path.join(root, "var/lib/node"))
    link = os.path.join(root, "var/lib/node/x.prom")
    os.symlink("/etc/shadow", link)
    os.lchown(link, 65534, 65534)
    with pytest.raises(CommandExecutionError, match="is a link owned by uid 65534, not by root: refused"):
        paths.contained("/", link)  # with root "/", /etc/shadow would be "contained"
    os.lchown(link, 0, 0)
    assert paths.contained("/", link) == "/etc/shadow"  # root's own link (Debian's 99-sysctl.conf) is followed


def test_a_directory_link_another_user_owns_is_refused_too(tmp_path):
    root = str(tmp_path / "root")
    os.makedirs(os.path.join(root, "var/lib"))
    os.symlink("/etc", os.path.join(root, "var/lib/node"))
    os.lchown(os.path.join(root, "var/lib/node"), 65534, 65534)
    with pytest.raises(CommandExecutionError, match="owned by uid 65534"):
        paths.contained("/", os.path.join(root, "var/lib/node/passwd"))


def test_writable_refuses_non_regular_files_and_loose_directories(tmp_path):
    root = str(tmp_path / "root")
    os.makedirs(os.path.join(root, "etc/sysctl.d"))
    fifo = os.path.join(root, "etc/sysctl.d/90.conf")
    os.mkfifo(fifo)
    with pytest.raises(CommandExecutionError, match="it is a FIFO, not a regular file"):
        paths.writable(root, fifo)
    os.unlink(fifo)
    assert paths.writable(root, fifo) == fifo
    os.chmod(os.path.join(root, "etc/sysctl.d"), 0o777)
    with pytest.raises(
        CommandExecutionError, match=r"sysctl.d can be written by users other than its owner \(mode 777"
    ):
        paths.writable(root, fifo)
    os.chmod(os.path.join(root, "etc/sysctl.d"), 0o1777)  # sticky: only owners replace their entries
    assert paths.writable(root, fifo) == fifo
