"""Real parts nobody here wrote, for the beacon's kernel tier: rsyslogd and logrotate.

``Rsyslog`` starts the Debian ``rsyslogd`` with a config and pid file of its
own (imklog: it reads the kernel log itself) writing ``kern.*`` to one file in
high-precision RFC 3339 format, and stops it by pid. ``Logrotate`` runs the
real ``logrotate -f`` on that file with a state file of its own. ``KmsgCounter``
is the test's own reader of /dev/kmsg: the truth the beacon is compared with.
"""

import os
import re
import signal
import subprocess
import threading
import time

RSYSLOGD = "/usr/sbin/rsyslogd"
LOGROTATE = "/usr/sbin/logrotate"


def missing_tools():
    return [tool for tool in (RSYSLOGD, LOGROTATE) if not os.access(tool, os.X_OK)]


class Rsyslog:
    """``reduce``: ``$RepeatedMsgReduction on`` (RHEL's configs), with the kernel's stamps parsed out of
    the message (imklog ``KeepKernelTimestamp off``), else no two kernel lines are alike; the test's
    own markers (user facility) go to the file too, so a held-back repeat line is written."""

    def __init__(self, workdir, reduce=False):
        self.dir = workdir
        self.log = os.path.join(workdir, "kern.log")
        self.pidfile = os.path.join(workdir, "rsyslogd.pid")
        self.conf = os.path.join(workdir, "rsyslog.conf")
        self.proc = None
        self.reduce = reduce

    def start(self, timeout=20):
        klog = 'module(load="imklog")\n'
        rules = "kern.*"
        if self.reduce:
            klog = (
                'module(load="imklog" ParseKernelTimestamp="on" KeepKernelTimestamp="off" '
                'PermitNonKernelFacility="on")\n$RepeatedMsgReduction on\n'
            )
            rules = "kern.*;user.*"
        with open(self.conf, "w", encoding="ascii") as fh:
            fh.write(
                f'global(workDirectory="{self.dir}")\n'
                + klog
                + 'module(load="builtin:omfile" template="RSYSLOG_FileFormat")\n'
                f'{rules} action(type="omfile" file="{self.log}")\n'
            )
        self.proc = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", self.conf, "-i", self.pidfile],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # imklog first writes what the kernel logged before it started (the file
        # appears with the first line): ready once the pid file is there and the
        # file has stopped changing.
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if self.proc.poll() is not None:
                raise RuntimeError(f"rsyslogd exited with {self.proc.returncode}; try {RSYSLOGD} -N1 -f {self.conf}")
            size = os.path.getsize(self.log) if os.path.exists(self.log) else -1
            if size == last and os.path.exists(self.pidfile):
                return self
            last = size
        self.stop()
        raise RuntimeError(f"rsyslogd did not settle writing {self.log} within {timeout} s")

    def hup(self):
        """What logrotate's postrotate sends: rsyslogd closes and reopens its files."""
        self.proc.send_signal(signal.SIGHUP)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


# compress: logrotate's compresscmd and compressext for each compression the beacon reads.
COMPRESSORS = {
    "gzip": ("/usr/bin/gzip", ".gz"),
    "xz": ("/usr/bin/xz", ".xz"),
    "bzip2": ("/usr/bin/bzip2", ".bz2"),
    "zstd": ("/usr/bin/zstd", ".zst"),
}


class Logrotate:
    """``logrotate -f`` on the rsyslog file: ``create`` or ``copytruncate``, optionally HUP in postrotate.

    ``compress``: a ``COMPRESSORS`` name (else nocompress); ``extra``: more directives
    (``delaycompress``, ``dateext``, ``olddir DIR``...).
    """

    def __init__(self, syslog, mode="create", hup=False, compress=None, extra=()):
        self.syslog = syslog
        self.conf = os.path.join(syslog.dir, f"logrotate-{mode}.conf")
        self.state = os.path.join(syslog.dir, "logrotate.state")
        post = f"    postrotate\n        kill -HUP $(cat {syslog.pidfile})\n    endscript\n" if hup else ""
        if compress:
            cmd, ext = COMPRESSORS[compress]
            packing = f"    compress\n    compresscmd {cmd}\n    compressext {ext}\n    compressoptions -1\n"
        else:
            packing = "    nocompress\n"
        more = "".join(f"    {line}\n" for line in extra)
        with open(self.conf, "w", encoding="ascii") as fh:
            fh.write(f"{syslog.log} {{\n    {mode}\n    rotate 200\n{packing}{more}    missingok\n{post}}}\n")
        os.chmod(self.conf, 0o644)
        self.runs = 0

    def rotate(self):
        KmsgCounter.mark(f"rotate {self.runs} start")
        proc = subprocess.run(
            [LOGROTATE, "-f", "-s", self.state, self.conf], capture_output=True, text=True, timeout=30, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"logrotate failed: {proc.stderr.strip()}")
        KmsgCounter.mark(f"rotate {self.runs} end")
        self.runs += 1


def stamps_in_files(log, inode):
    """Kernel microseconds of the table-full lines naming ``inode`` in the file and its rotated copies."""
    pattern = re.compile(rf"\[ *(\d+)\.(\d{{6}})\] nf_conntrack: nf_conntrack: table full in netns {inode},".encode())
    directory, base = os.path.split(log)
    found = []
    for name in os.listdir(directory):
        if name.startswith(base):
            with open(os.path.join(directory, name), "rb") as fh:
                found.extend(int(s) * 1_000_000 + int(u) for s, u in pattern.findall(fh.read()))
    return found


class KmsgCounter(threading.Thread):
    """Counts the kernel's table-full records naming one netns, from now on, on its own /dev/kmsg reader."""

    MARK = b"ctb-mark "

    def __init__(self, inode):
        super().__init__(daemon=True)
        self.pattern = re.compile(rf"table full in netns {inode}, dropping packet".encode())
        self.count = 0
        self.stamps = set()  # kernel microseconds of each line: rsyslog writes them as [secs.usec]
        self.marks = []  # (microseconds, text) of the test's own markers, on the kernel's clock
        self.overruns = 0
        self.stopping = threading.Event()
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)
        self.mark("start")  # its time bounds what counts, in the files too

    @property
    def start_usec(self):
        return next(usec for usec, text in self.marks if text == "start")

    def windows(self):
        """(start, end) microseconds of every logrotate run, on the kernel's clock."""
        starts = {text.split()[1]: usec for usec, text in self.marks if text.endswith(" start") and text != "start"}
        return [(starts[text.split()[1]], usec) for usec, text in self.marks if text.endswith(" end")]

    def run(self):
        try:
            while True:
                try:
                    rec = os.read(self.fd, 8192)
                except BlockingIOError:
                    if self.stopping.is_set():
                        return
                    time.sleep(0.005)
                    continue
                except BrokenPipeError:
                    self.overruns += 1
                    continue
                head, _, body = rec.partition(b";")
                prio, _, usec = (int(field) for field in head.split(b",")[:3])
                if prio >> 3 == 0 and self.pattern.search(body):
                    self.count += 1
                    self.stamps.add(usec)
                elif body.startswith(self.MARK):
                    self.marks.append((usec, body[len(self.MARK) :].strip().decode()))
        finally:
            os.close(self.fd)

    @classmethod
    def mark(cls, text):
        """A line in the kernel log on the kernel's own clock (user facility: no beacon counts it)."""
        fd = os.open("/dev/kmsg", os.O_WRONLY)
        try:
            os.write(fd, b"<14>" + cls.MARK + text.encode())
        finally:
            os.close(fd)

    def finish(self):
        """Stop once everything the kernel printed so far is read; the count."""
        self.stopping.set()
        self.join(timeout=10)
        return self.count
