"""Recorded kernel log lines of every era and source format, for the beacon.

Each sample: (label, line, netns inode named by the line or None). The texts
are the kernel's own (see /work/shared/domain.md); the headers are what
syslog daemons, journald and dmesg put in front of them.
"""

TABLE_FULL = [
    # CentOS 5, ip_conntrack, sysklogd /var/log/messages.
    ("centos5-messages", "Mar  3 04:12:01 web1 kernel: ip_conntrack: table full, dropping packet.", None),
    # CentOS 6, early nf_conntrack, with the printk time stamp on.
    (
        "centos6-messages",
        "Jun 14 10:00:07 web2 kernel: [ 8123.004512] nf_conntrack: table full, dropping packet.",
        None,
    ),
    # RHEL 7 builds that print the module prefix once.
    ("rhel7-messages", "Jan  9 23:59:59 db1 kernel: nf_conntrack: table full, dropping packet", None),
    # 3.x-6.x: the prefix doubled (pr_fmt plus the message), Debian kern.log, RFC 3339 stamps.
    (
        "debian-kernlog",
        "2024-05-02T08:15:30.123456+02:00 lb1 kernel: [123456.789012] nf_conntrack: nf_conntrack: table full, dropping packet",
        None,
    ),
    # Ubuntu /var/log/syslog without printk times.
    ("ubuntu-syslog", "May  2 08:15:30 lb2 kernel: nf_conntrack: nf_conntrack: table full, dropping packet", None),
    # 6.17+ outside the initial netns (this machine, 6.18), rsyslog high-precision format.
    (
        "netns-kernlog",
        "2026-11-25T11:00:00.500000+00:00 vm kernel: nf_conntrack: nf_conntrack: table full in netns 4026532177, dropping packet",
        4026532177,
    ),
    # dmesg output and the bare message (kmsg body, journal MESSAGE).
    ("dmesg", "[ 1928.266457] nf_conntrack: nf_conntrack: table full in netns 4026532177, dropping packet", 4026532177),
    ("dmesg-T", "[Wed Nov 25 11:00:00 2026] nf_conntrack: nf_conntrack: table full, dropping packet", None),
    ("bare", "nf_conntrack: nf_conntrack: table full in netns 4026532199, dropping packet", 4026532199),
    # journalctl -o short (a file written by journald forwarding).
    ("journal-short", "Nov 25 11:00:00 vm kernel: nf_conntrack: nf_conntrack: table full, dropping packet", None),
]

SUPPRESSED = [
    ("centos5-printk", "Mar  3 04:12:06 web1 kernel: printk: 443 messages suppressed.", 443),
    ("modern-net_ratelimit", "May  2 08:15:35 lb2 kernel: net_ratelimit: 431 callbacks suppressed", 431),
    ("dmesg-net_ratelimit", "[ 1933.000001] net_ratelimit: 17 callbacks suppressed", 17),
]

# Lines that mention the words but are not the kernel's table-full message.
NOT_TABLE_FULL = [
    "May  2 08:15:30 lb2 myapp[123]: nf_conntrack: table full, dropping packet",  # another program
    "May  2 08:15:30 lb2 kernel: TCP: request_sock_TCP: Possible SYN flooding on port 80.",
    "May  2 08:15:30 lb2 kernel: nf_conntrack: falling back to vmalloc.",
    "May  2 08:15:30 lb2 kernel: dst cache overflow",
    "May  2 08:15:30 lb2 CRON[1]: (root) CMD (echo table full, dropping packet)",
]

# /dev/kmsg records: "priority,sequence,microseconds,flags;message".
KMSG_FULL = "4,{seq},{usec},-;nf_conntrack: nf_conntrack: table full in netns {ns}, dropping packet\n"
KMSG_FULL_INIT = "4,{seq},{usec},-;nf_conntrack: nf_conntrack: table full, dropping packet\n"
KMSG_SUPPRESSED = "4,{seq},{usec},-;net_ratelimit: {n} callbacks suppressed\n"
KMSG_OTHER = "6,{seq},{usec},-;e1000e: eth0 NIC Link is Up 1000 Mbps Full Duplex\n SUBSYSTEM=net\n DEVICE=n2\n"
# What user space writing to /dev/kmsg gets: facility user (1), never kernel (0).
KMSG_SPOOF = "12,{seq},{usec},-;nf_conntrack: nf_conntrack: table full, dropping packet\n"

# Syslog daemons' repeat reduction: (label, lines, table-full lines they stand for, netns of them).
REPEATS = [
    # rsyslog $RepeatedMsgReduction on (RHEL family): the first line, then the count of its repeats.
    (
        "rsyslog-repeated",
        "Dec  3 07:00:00 web1 kernel: nf_conntrack: nf_conntrack: table full, dropping packet\n"
        "Dec  3 07:00:05 web1 kernel: message repeated 310 times: [ nf_conntrack: nf_conntrack: table full, dropping packet]\n",
        311,
        None,
    ),
    (
        "rsyslog-repeated-printk-time",
        "2026-12-03T07:00:00.1+00:00 vm kernel: message repeated 4 times: "
        "[ [ 123.456789] nf_conntrack: nf_conntrack: table full in netns 4026532177, dropping packet]\n",
        4,
        4026532177,
    ),
    # sysklogd, busybox syslogd, rsyslog's legacy form: names the line before it.
    (
        "sysklogd-last-message",
        "Mar  3 04:12:01 web1 kernel: ip_conntrack: table full, dropping packet.\n"
        "Mar  3 04:12:31 web1 last message repeated 42 times\n",
        43,
        None,
    ),
    # syslog-ng: the first 20 characters of the message it suppressed.
    (
        "syslog-ng-last-message",
        "Dec  3 07:00:00 lb1 kernel: nf_conntrack: nf_conntrack: table full in netns 4026532199, dropping packet\n"
        "Dec  3 07:00:10 lb1 syslog-ng[812]: Last message 'nf_conntrack: nf_con' repeated 9 times, "
        "suppressed by syslog-ng on lb1\n",
        10,
        4026532199,
    ),
    # A repeat of another message is not a table-full line.
    (
        "last-message-of-another",
        "Dec  3 07:00:00 web1 kernel: nf_conntrack: nf_conntrack: table full, dropping packet\n"
        "Dec  3 07:00:01 web1 kernel: e1000e: eth0 NIC Link is Up\n"
        "Dec  3 07:00:31 web1 last message repeated 5 times\n",
        1,
        None,
    ),
]
