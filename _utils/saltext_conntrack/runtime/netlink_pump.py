"""The child that receives a ctnetlink table dump while its parent parses.

The kernel builds each dump buffer inside ``recv``, so in one process the
dump and the parse take turns. Run as a script (``python -I -S
netlink_pump.py FD [TIMEOUT]``) on a socket its parent already sent the dump request
on, this receives every buffer and passes it on through stdout, so the
kernel's dump runs on one CPU and the parent's parse on another (a thread
could not: it needs the GIL after every ``recv``, and the parse holds it).

What goes through the pipe: batches of about ``BATCH`` bytes, each a 4-byte
length (native order) and then frames, each a 4-byte length and one buffer
exactly as ``recv`` returned it, so the parent parses a buffer at a time
(32 KiB at most: it stays in cache) without finding message boundaries.
The child does nothing else: counting here what the parent's fast path
checks itself against (0.15 s per 1,000,000 entries) made the child, which
also pays the kernel's dump and the copy into the pipe, the slower side.

The child stops after the buffer that ends the dump (``dump_ended``); with
exit status 2 and a line on stderr when the kernel sends nothing for
TIMEOUT seconds (10 by default, what the parent's socket waits) or when a
buffer fills a whole FRAME (it may have been cut short).

Standard library only, and nothing of the package: the child starts with
``-I -S`` in about 20 ms.
"""

import os
import select
import sys

NLMSG_ERROR, NLMSG_DONE = 2, 3
FRAME_HEAD = 4
BATCH = 1 << 20
# Room for one dump buffer: the kernel puts at most 32 KiB in one. A read
# that fills it may have been cut short (a datagram's rest is dropped, and
# its entries would go uncounted), so that is an error, not a frame.
FRAME = 1 << 17
TIMEOUT = 10.0


def dump_ended(data):
    """Whether this buffer ends a dump: NLMSG_DONE last (20 bytes), or an NLMSG_ERROR or NLMSG_DONE first."""
    if len(data) >= 20 and data[-20] == 20 and not any(data[-19:-16]) and data[-16] == NLMSG_DONE:
        return True
    return len(data) >= 16 and int.from_bytes(data[4:6], sys.byteorder) in (NLMSG_ERROR, NLMSG_DONE)


def pump(fd, out, timeout=TIMEOUT):
    """Copy the dump on socket ``fd`` to file descriptor ``out`` in batches of frames; True when it ended."""
    buf = bytearray(BATCH + FRAME + FRAME_HEAD + 4)
    view = memoryview(buf)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    fill, ended = 4, False

    def flush():
        buf[0:4] = (fill - 4).to_bytes(4, sys.byteorder)
        sent = 0
        while sent < fill:
            sent += os.write(out, view[sent:fill])

    while not ended:
        # The kernel fills the next buffer inside the read that took the last
        # one, so there is almost always more at once; where there is not, the
        # parent gets what is here instead of waiting for a whole batch.
        if fill > 4 and not poller.poll(0):
            flush()
            fill = 4
        if not poller.poll(timeout * 1000):
            return False
        start = fill + FRAME_HEAD
        try:
            got = os.readv(fd, [view[start : start + FRAME]])
        except BlockingIOError:
            continue
        if got == FRAME:
            raise OSError(f"a dump buffer of {FRAME} bytes or more: it cannot be read whole")
        end = start + got
        buf[fill:start] = got.to_bytes(4, sys.byteorder)
        ended = got == 0 or dump_ended(view[start:end])
        fill = end
        if ended or fill >= BATCH:
            flush()
            fill = 4
    return True


def main(argv):
    timeout = float(argv[2]) if len(argv) > 2 else TIMEOUT
    try:
        if pump(int(argv[1]), sys.stdout.fileno(), timeout):
            return 0
        sys.stderr.write(f"the kernel sent nothing for {timeout:g} s in the middle of a dump\n")
    except OSError as err:
        sys.stderr.write(f"{err}\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
