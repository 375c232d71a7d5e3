"""The kernel log readers and their cursors: ``/dev/kmsg``, journald, a syslog file.

Every reader is a ``protocol.LogReader``: ``read(budget, now)`` (the new
hits, in order), ``state()`` (its cursor as JSON-able data, or None),
``cursor_key()`` (changes whenever the cursor moves), ``take_gaps()`` (what
was destroyed before it was read, since the last call) and ``close()``.
``make_source`` picks one for a beacon's ``source`` option.
"""

import errno
import json
import logging
import os
import shutil
import subprocess
import time

from saltext_conntrack.common import paths
from saltext_conntrack.logwatch import grammar, protocol
from saltext_conntrack.logwatch.follow import FileSource

log = logging.getLogger(__name__)

LOG_FILES = ("var/log/kern.log", "var/log/messages", "var/log/syslog")
KMSG = "dev/kmsg"
__all__ = ["FileSource", "JournalSource", "KmsgSource", "make_source", "LOG_FILES", "KMSG"]


class KmsgSource(protocol.LogReader):
    """``/dev/kmsg``: one record per read(), each with a sequence number.

    The kernel returns EPIPE when records were overwritten before this reader
    got to them, then carries on from the oldest record still there: the gap
    in sequence numbers is exactly what was lost.
    """

    kind = "kmsg"

    def __init__(self, path, saved=None, boot_id=None):
        self.path = path
        self.name = "kmsg"
        self.fd = None
        self.seq = None
        self.lost = 0
        self.overruns = 0
        self.boot_id = boot_id
        self.saved = saved if saved and saved.get("kind") == "kmsg" else None
        # Wall time of the kernel's timestamp zero (printk uses the monotonic clock).
        self.epoch = time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)

    # Seams for tests that play a ring buffer.
    def _open(self):
        return os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)

    def _read(self, fd):
        return os.read(fd, 8192)

    def _close_fd(self, fd):
        os.close(fd)

    def probe(self):
        """None when records can be read here, else the OSError that says why not.

        Opening is not enough: before Linux 3.5 /dev/kmsg exists but is for
        writing only, and read() fails with EINVAL (CentOS 5 and 6). Reads one
        record on a descriptor of its own, so the reader's position is untouched.
        """
        try:
            fd = self._open()
        except OSError as err:
            return err
        try:
            self._read(fd)
        except (BlockingIOError, BrokenPipeError, InterruptedError):
            pass  # an empty ring, an overrun, a signal: records can be read
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EPIPE, errno.EINTR):
                return err
        finally:
            self._close_fd(fd)
        return None

    def close(self):
        if self.fd is not None:
            self._close_fd(self.fd)
            self.fd = None

    def state(self):
        return {"kind": "kmsg", "boot_id": self.boot_id, "seq": self.seq}

    def cursor_key(self):
        return self.seq

    def take_gaps(self):
        if not self.lost:
            return None
        lost, self.lost = self.lost, 0
        return {"lost": lost, "lost_bytes": 0, "unverified": 0}

    def _fast_forward(self):
        while True:
            try:
                rec = self._read(self.fd)
            except (BlockingIOError, InterruptedError):
                return
            except BrokenPipeError:
                continue
            if not rec:
                return
            try:
                self.seq = int(rec.split(b",", 2)[1])
            except (ValueError, IndexError):
                continue

    def _start(self):
        self.fd = self._open()
        saved = self.saved
        try:
            if saved and saved.get("boot_id") == self.boot_id and isinstance(saved.get("seq"), int):
                self.seq = saved["seq"]  # same boot: read from the oldest record, skip what was seen
            else:
                # Start at the end, but by reading to it: SEEK_END would leave the
                # sequence number unknown, and with it the count of an overrun.
                self._fast_forward()
        except BaseException:
            # Not at the end yet: a later run must start over, not read the whole ring as news.
            self.close()
            raise
        self.saved = None

    def _record(self):
        """The next record, or None when there is none now; an overrun is counted and skipped."""
        while True:
            try:
                return self._read(self.fd) or None
            except BlockingIOError:
                return None
            except BrokenPipeError:
                self.overruns += 1
            except OSError as err:
                if err.errno == errno.EPIPE:
                    self.overruns += 1
                elif err.errno == errno.EAGAIN:
                    return None
                else:
                    raise

    def read(self, budget, now=None):
        if self.fd is None:
            self._start()
        hits = []
        used = 0
        while used < budget:
            rec = self._record()
            if rec is None:
                break
            used += len(rec)
            head, sep, body = rec.partition(b";")
            fields = head.split(b",", 4)
            try:
                prio, seq, usec = int(fields[0]), int(fields[1]), int(fields[2])
            except (ValueError, IndexError):
                continue
            if not sep or (self.seq is not None and seq <= self.seq):
                continue
            if self.seq is not None and seq > self.seq + 1:
                self.lost += seq - self.seq - 1
            self.seq = seq
            if prio >> 3:
                continue  # not the kernel facility: user space wrote it
            hit = grammar.scan_message(body.partition(b"\n")[0], self.epoch + usec / 1e6)
            if hit:
                hits.append(hit)
        return hits


class JournalSource(protocol.LogReader):
    """Kernel messages from journald, through ``journalctl`` and a cursor.

    Only options journalctl has had since systemd 219 (CentOS 7): no
    ``--output-fields`` (236+). A cursor journalctl refuses (its entry was
    vacuumed away, or the saved one is garbled) is dropped: reading starts
    again at the journal's end, and the gap counts in ``unverified`` (what
    was vacuumed may all have been read).
    """

    kind = "journal"

    def __init__(self, saved=None):
        self.name = "journal"
        self.cursor = saved.get("cursor") if saved and saved.get("kind") == "journal" else None
        self.started = self.cursor is not None
        self.unverified = 0

    def close(self):
        pass

    def cursor_key(self):
        return self.cursor

    def state(self):
        return {"kind": "journal", "cursor": self.cursor} if self.cursor else None

    def take_gaps(self):
        if not self.unverified:
            return None
        gaps, self.unverified = {"lost": 0, "lost_bytes": 0, "unverified": self.unverified}, 0
        return gaps

    @staticmethod
    def _journalctl(args):
        cmd = ["journalctl", "--no-pager", "-q", "-o", "json", *args, "_TRANSPORT=kernel"]
        return subprocess.run(cmd, capture_output=True, timeout=60, check=False)

    def _query(self):
        """(journalctl's answer, whether it only tells where the end is)."""
        if self.cursor:
            proc = self._journalctl(["--after-cursor", self.cursor])
            if proc.returncode == 0 or b"cursor" not in proc.stderr.lower():
                return proc, False
            log.warning(
                "conntrack beacon: journalctl refused the cursor %s (%s); starting again at the journal's end",
                self.cursor,
                proc.stderr.decode(errors="replace").strip(),
            )
            self.cursor = None
            self.unverified += 1
            self.started = False  # should this fail too, the next run still starts at the end
        if not self.started:
            return self._journalctl(["-n", "1"]), True
        return self._journalctl([]), False

    def read(self, budget, now=None):
        proc, only_end = self._query()
        if proc.returncode != 0:
            raise RuntimeError(f"journalctl failed: {proc.stderr.decode(errors='replace').strip()}")
        # Only now: a first run that failed must not make the next one read the whole journal.
        self.started = True
        hits = []
        used = 0
        for line in proc.stdout.splitlines():
            used += len(line)
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            self.cursor = entry.get("__CURSOR", self.cursor)
            if only_end:
                continue
            hit = _journal_hit(entry)
            if hit:
                hits.append(hit)
            if used >= budget:
                break
        return hits


def _journal_hit(entry):
    msg = entry.get("MESSAGE")
    if isinstance(msg, list):  # journald sends non-UTF-8 messages as bytes
        msg = bytes(msg)
    elif isinstance(msg, str):
        msg = msg.encode()
    else:
        return None
    try:
        ts = int(entry.get("__REALTIME_TIMESTAMP")) / 1e6
    except (TypeError, ValueError):
        ts = None
    return grammar.scan_message(msg, ts)


def boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return None


def make_source(source, root, saved, kmsg_class=None, olddir=None):
    """The reader for a ``source`` option: ``kmsg``, ``journal``, ``auto`` or a resolved file path.

    ``olddir``: the resolved directory logrotate moves a file source's rotated copies to.
    """
    if source == "journal":
        return JournalSource(saved)
    if source not in ("auto", "kmsg"):
        return FileSource(source, saved, olddir)
    kmsg = (kmsg_class or KmsgSource)(paths.join(root, KMSG), saved, boot_id())
    err = kmsg.probe()
    if err is None:
        return kmsg
    if source == "kmsg":
        hint = " (kernels before 3.5 only let it be written)" if err.errno == errno.EINVAL else ""
        raise RuntimeError(
            f"source kmsg: {kmsg.path} cannot be read: {err.strerror or err}{hint}; "
            "use source: journal, or a log file that receives kernel messages such as /var/log/messages"
        )
    log.debug("conntrack beacon: %s cannot be read (%s); trying the journal and log files", kmsg.path, err)
    if (
        os.path.abspath(root) == "/"
        and shutil.which("journalctl")
        and (os.path.isdir("/run/log/journal") or os.path.isdir("/var/log/journal"))
    ):
        return JournalSource(saved)
    for rel in LOG_FILES:
        path = paths.join(root, rel)
        if os.path.exists(path):
            return FileSource(paths.contained(root, path), saved)
    raise RuntimeError(
        "no kernel log to read: /dev/kmsg is unreadable, there is no journal and none of "
        + ", ".join("/" + rel for rel in LOG_FILES)
        + " exists; set source to a log file that receives kernel messages"
    )
