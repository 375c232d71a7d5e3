"""A real sshd of the tests' own: 127.0.0.1, a free port, its own config,
host key, client key and pid file in a temporary directory; root may log in
by that key only. Stopped by its pid, whatever happened in the tests."""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time

SSHD = "/usr/sbin/sshd"


def unavailable_reason():
    """Why this host cannot run the salt-ssh tier, or None."""
    missing = [cmd for cmd in ("ssh", "ssh-keygen") if not shutil.which(cmd)]
    if not os.access(SSHD, os.X_OK):
        missing.append(f"{SSHD} (Debian package openssh-server)")
    if missing:
        return f"salt-ssh tests need {', '.join(missing)}: scripts/system-deps installs them"
    if os.geteuid() != 0:
        return "salt-ssh tests log in as root over ssh to 127.0.0.1: run them as root"
    return None


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keygen(path):
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        timeout=30,
    )


class Sshd:
    """``with Sshd(tmpdir) as sshd:`` a running sshd; ``sshd.port``, ``sshd.client_key``."""

    def __init__(self, tmpdir):
        self.dir = pathlib.Path(tmpdir)
        self.port = _free_port()
        self.host_key = self.dir / "host_ed25519"
        self.client_key = self.dir / "client_ed25519"
        self.pid_file = self.dir / "sshd.pid"
        self.log = self.dir / "sshd.log"
        self.pid = None

    def _config(self):
        authorized = self.dir / "authorized_keys"
        shutil.copy(f"{self.client_key}.pub", authorized)
        authorized.chmod(0o600)
        config = self.dir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.pid_file}",
                    f"AuthorizedKeysFile {authorized}",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    # the tmp dir is world-traversable; the keys in it are 0600
                    "StrictModes no",
                    "AllowUsers root@127.0.0.1",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            ),
            encoding="ascii",
        )
        return config

    def start(self, timeout=30):
        _keygen(self.host_key)
        _keygen(self.client_key)
        config = self._config()
        # sshd refuses to start without its privilege-separation directory.
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        subprocess.run([SSHD, "-t", "-f", str(config)], check=True, timeout=timeout)
        # Daemon mode: sshd forks, writes its pid file, and this call returns.
        subprocess.run(
            [SSHD, "-f", str(config), "-E", str(self.log)],
            check=True,
            timeout=timeout,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid_file.exists() and self.pid_file.read_text(encoding="ascii").strip():
                self.pid = int(self.pid_file.read_text(encoding="ascii"))
            if self.pid and self._listening():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"sshd did not listen on 127.0.0.1:{self.port} within {timeout} s; see {self.log}")

    def _listening(self):
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self):
        # A start that failed after sshd forked still left its pid file.
        if not self.pid and self.pid_file.exists():
            text = self.pid_file.read_text(encoding="ascii").strip()
            self.pid = int(text) if text.isdigit() else None
        if not self.pid:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.pid = None

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
