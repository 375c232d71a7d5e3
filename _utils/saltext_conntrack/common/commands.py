"""The one way to run an external tool: one search path, sbin included.

A minion started from a service manager or a login without sbin on PATH must
still find iptables-save, nft, rmmod and friends, or a check that "no rule
needs conntrack" would pass for the wrong reason.
"""

import fcntl
import os
import shutil
import subprocess

from salt.exceptions import CommandExecutionError

SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20


def search_path():
    parts = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    return os.pathsep.join(parts + [p for p in SBIN if p not in parts])


def path_stamp():
    """What changes when ``which`` may answer otherwise: each search directory's mtime (None: missing).

    Installing or removing a tool adds or drops a name in one of them; this
    costs one ``stat`` a directory, where asking ``which`` for each tool
    tries every directory for every tool.
    """
    stamp = []
    for directory in search_path().split(os.pathsep):
        try:
            stamp.append((directory, os.stat(directory).st_mtime_ns))
        except OSError:
            stamp.append((directory, None))
    return tuple(stamp)


def which(cmd):
    """The full path of ``cmd``, or None."""
    return shutil.which(cmd, path=search_path())


def run(args, stdin=None, check=True, timeout=60):
    """Run ``args`` (a list; never a shell) and return the CompletedProcess.

    A missing tool or, with ``check``, a non-zero exit is a CommandExecutionError
    that names the command and what it printed.
    """
    exe = which(args[0])
    if not exe:
        raise CommandExecutionError(f"{args[0]} is not installed on this host (searched {search_path()})")
    try:
        proc = subprocess.run(
            [exe, *args[1:]], input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise CommandExecutionError(f"{' '.join(args)} did not finish within {timeout} s") from err
    if check and proc.returncode != 0:
        raise CommandExecutionError(
            f"{' '.join(args)} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[:2000]}"
        )
    return proc


def widen_pipe(fd):
    """Let the writer of pipe ``fd`` run up to PIPE_SIZE ahead of its reader (the default is 64 KiB).

    A child that walks the kernel's table for a parser then keeps walking
    while the parser catches up, instead of stopping every 64 KiB. Where
    the system's limit (``fs.pipe-max-size``) is lower, the pipe stays as it is.
    """
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass
