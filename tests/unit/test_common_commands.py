"""saltext_conntrack.common.commands: one search path (sbin included), never a shell."""

import os

import pytest
from salt.exceptions import CommandExecutionError

from saltext_conntrack.common import commands


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/bin:/usr/bin", "/bin:/usr/bin:/usr/local/sbin:/usr/sbin:/sbin"),
        ("/usr/sbin:/bin", "/usr/sbin:/bin:/usr/local/sbin:/sbin"),
        ("::/bin:", "/bin:/usr/local/sbin:/usr/sbin:/sbin"),
        ("", "/usr/local/sbin:/usr/sbin:/sbin"),
    ],
)
def test_search_path_adds_sbin_once(monkeypatch, path, expected):
    monkeypatch.setenv("PATH", path)
    assert commands.search_path() == expected


def test_search_path_without_path_at_all(monkeypatch):
    monkeypatch.delenv("PATH", raising=False)
    assert commands.search_path() == "/usr/local/sbin:/usr/sbin:/sbin"


@pytest.mark.skipif(not os.path.exists("/usr/sbin/iptables-save"), reason="needs /usr/sbin/iptables-save")
def test_which_finds_sbin_tools_when_path_lacks_sbin(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert commands.which("iptables-save") == "/usr/sbin/iptables-save"


def test_which_missing_tool_is_none():
    assert commands.which("no-such-conntrack-tool") is None


def test_run_returns_output_and_takes_stdin():
    proc = commands.run(["sh", "-c", "cat; echo err >&2"], stdin="abc\n")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "abc\n", "err\n")


def test_run_never_uses_a_shell():
    assert commands.run(["echo", "$HOME; ls *"]).stdout == "$HOME; ls *\n"


def test_run_finds_the_tool_through_the_search_path(monkeypatch, tmp_path):
    tool = tmp_path / "conntrack-test-tool"
    tool.write_text("#!/bin/sh\necho from $0\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"/bin:/usr/bin:{tmp_path}")
    assert commands.run(["conntrack-test-tool"]).stdout == f"from {tool}\n"


def test_run_failure_names_the_command_and_what_it_printed():
    with pytest.raises(CommandExecutionError) as err:
        commands.run(["sh", "-c", "echo boom >&2; exit 3"])
    assert str(err.value) == "sh -c echo boom >&2; exit 3 failed (exit 3): boom"


def test_run_failure_falls_back_to_stdout_and_bounds_the_text():
    with pytest.raises(CommandExecutionError) as err:
        commands.run(["sh", "-c", "printf '%05000d' 0; exit 1"])
    assert str(err.value) == "sh -c printf '%05000d' 0; exit 1 failed (exit 1): " + "0" * 2000


def test_run_without_check_returns_the_failure():
    proc = commands.run(["sh", "-c", "echo out; exit 4"], check=False)
    assert (proc.returncode, proc.stdout) == (4, "out\n")


def test_run_missing_tool(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(CommandExecutionError) as err:
        commands.run(["no-such-conntrack-tool", "-x"])
    assert str(err.value) == (
        "no-such-conntrack-tool is not installed on this host (searched /nonexistent:/usr/local/sbin:/usr/sbin:/sbin)"
    )


def test_run_timeout():
    with pytest.raises(CommandExecutionError) as err:
        commands.run(["sleep", "5"], timeout=0.2)
    assert str(err.value) == "sleep 5 did not finish within 0.2 s"


def test_path_stamp_changes_when_a_tool_is_installed_in_a_search_directory(tmp_path, monkeypatch):
    tools = tmp_path / "bin"
    tools.mkdir()
    monkeypatch.setenv("PATH", f"{tools}:{tmp_path / 'missing'}")
    before = commands.path_stamp()
    assert (str(tmp_path / "missing"), None) in before
    os.utime(tools, ns=(1, 1))  # an mtime any real install moves on from
    before = commands.path_stamp()
    (tools / "nft").write_text("#!/bin/sh\n")
    assert commands.path_stamp() != before
