"""Boots for the vm tier: Debian's modular kernel under QEMU (virtme-ng), the
host's root shared read-only, ``/etc`` and the minion cachedir as writable
layers kept between boots, results written by tests/vm/guest.py.

scripts/vm-setup fetches and caches the parts under run/vm/. Acceleration is
probed, not assumed: a KVM boot of the same kernel must print a marker within
``KVM_PROBE_SECONDS`` (``/dev/kvm`` on some hosts only runs special guests, and
Debian's kernel then aborts or spins); otherwise TCG. Where ``/dev/kvm`` is
PVM's (``/sys/module/kvm_pvm``) the probe is skipped: it spun for the whole
40 s it was given here. The verdict is cached in
run/vm/accel-<kernel version>; ``CONNTRACK_VM_ACCEL=tcg|kvm`` overrides it.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
VM = pathlib.Path(os.environ.get("CONNTRACK_VM_DIR", REPO / "run" / "vm"))
KVM_PROBE_SECONDS = 20
BOOT_SECONDS = 900
MARKER = "conntrack-vm-probe-ok"


def unavailable_reason():
    """Why the vm tier cannot run here, or None (scripts/vm-setup installs the rest)."""
    if os.uname().machine != "x86_64":
        return f"the vm tier boots Debian's amd64 kernel: this machine is {os.uname().machine}"
    if os.geteuid() != 0:
        return "the vm tier needs root (apt-get for its parts; the guest runs modprobe as root)"
    if not shutil.which("qemu-system-x86_64") and not shutil.which("apt-get"):
        return "no qemu-system-x86_64 and no apt-get to install it"
    return None


def setup():
    """Run scripts/vm-setup (quick when everything is cached); returns ``(env, reason)``."""
    proc = subprocess.run(
        [str(REPO / "scripts" / "vm-setup")], capture_output=True, text=True, check=False,
        env={**os.environ, "CONNTRACK_VM_DIR": str(VM)},
    )  # fmt: skip
    if proc.returncode != 0:
        return None, f"scripts/vm-setup failed: {proc.stderr.strip()[-500:]}"
    env = dict(line.split("=", 1) for line in (VM / "kernel.env").read_text().split())
    return env, None


def kernel_image(env):
    return VM / "kernel" / "boot" / f"vmlinuz-{env['KVERSION']}"


def _vng(env, exec_cmd, accel, rwdirs=(), timeout=BOOT_SECONDS):
    cmd = ["timeout", "--kill-after=10", str(timeout), str(VM / "venv" / "bin" / "vng"), "-r", str(kernel_image(env))]
    if accel == "tcg":
        cmd.append("--disable-kvm")
    cmd += ["--force-9p", "-m", "2G", "-p", "2"]
    cmd += [f"--rwdir={spec}" for spec in rwdirs]
    cmd += ["--exec", exec_cmd]
    path = f"{VM / 'venv' / 'bin'}:/usr/sbin:/sbin:{os.environ.get('PATH', '/usr/bin:/bin')}"
    start = time.monotonic()
    proc = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, env={**os.environ, "PATH": path}
    )
    return proc, time.monotonic() - start


def accel(env):
    """``kvm`` where a KVM boot of this kernel works here, else ``tcg``."""
    forced = os.environ.get("CONNTRACK_VM_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    cache = VM / f"accel-{env['KVERSION']}"
    if cache.exists():
        return cache.read_text().strip()
    verdict = "tcg"
    # PVM's /dev/kvm (kvm_pvm) runs only kernels built as PVM guests: Debian's
    # spins there until the probe's timeout, so no probe is spent on it.
    if os.access("/dev/kvm", os.R_OK | os.W_OK) and not os.path.isdir("/sys/module/kvm_pvm"):
        proc, _ = _vng(env, f"echo {MARKER}", "kvm", timeout=KVM_PROBE_SECONDS)
        if proc.returncode == 0 and MARKER in proc.stdout:
            verdict = "kvm"
    cache.write_text(verdict + "\n")
    return verdict


class Machine:
    """One guest whose ``/etc`` and cachedir survive its boots."""

    def __init__(self, env, name="guest"):
        self.env = env
        self.accel = accel(env)
        self.dir = VM / name
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir / "out").mkdir(parents=True)
        (self.dir / "cache").mkdir()
        # The guest's /etc starts as this host's: copied once, then kept.
        shutil.copytree("/etc", self.dir / "etc", symlinks=True)
        self.boots = []

    def boot(self, phase):
        """One boot running guest.py PHASE; returns its results (``boot_seconds`` added)."""
        out = self.dir / "out" / f"{phase}.json"
        guest = REPO / "tests" / "vm" / "guest.py"
        exec_cmd = (
            f"cd {REPO} && CONNTRACK_VM_CACHEDIR={self.dir / 'cache'} {sys.executable} {guest} {phase} {out}"
            f" >{self.dir / 'out'}/{phase}.log 2>&1"
        )
        rwdirs = [f"/etc={self.dir / 'etc'}", str(self.dir / "cache"), str(self.dir / "out")]
        proc, seconds = _vng(self.env, exec_cmd, self.accel, rwdirs)
        (self.dir / "out" / f"{phase}.console").write_text(proc.stdout + proc.stderr)
        results = json.loads(out.read_text()) if out.exists() else {"checks": {}, "errors": {}}
        results.update({"boot_seconds": round(seconds, 1), "rc": proc.returncode, "accel": self.accel})
        results.setdefault("errors", {})
        if not results.get("done"):
            log = self.dir / "out" / f"{phase}.log"
            tail = log.read_text()[-3000:] if log.exists() else (proc.stdout + proc.stderr)[-3000:]
            results["errors"]["boot"] = f"rc {proc.returncode}, guest did not finish:\n{tail}"
        self.boots.append(results)
        return results


def check(results, name):
    """One guest check's results, or a test failure with what the guest said."""
    import pytest  # pylint: disable=import-outside-toplevel

    if name in results["errors"]:
        pytest.fail(f"guest check {name} raised:\n{results['errors'][name]}")
    if name not in results["checks"]:
        pytest.fail(f"guest check {name} did not run: {results['errors'].get('boot', results['errors'])}")
    return results["checks"][name]
