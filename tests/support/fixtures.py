"""Fixture trees standing in for hosts this kernel cannot show.

``build_root(path, era)`` writes the /proc, /sys and /etc files a host of that
kernel era has, with the numbers given, so the execution module can be pointed
at it through the ``conntrack.root`` option.
"""

import os

from saltext_conntrack.persistence.drift import DEFAULT_TIMEOUTS

OLD_HEADER = (
    "entries searched found new invalid ignore delete delete_list insert "
    "insert_failed drop early_drop icmp_error expect_new expect_create expect_delete"
)
HEADERS = {
    # 2.6.18: no search_restart yet.
    "centos5": OLD_HEADER,
    "3.10": OLD_HEADER + " search_restart",
    "4.19": OLD_HEADER + " search_restart",
    # 5.x replaced searched with clashres and delete_list with chainlength.
    "5.15": "entries  clashres found new invalid ignore delete chainlength insert insert_failed "
    "drop early_drop icmp_error  expect_new expect_create expect_delete search_restart",
    "6.17": "entries  clashres found new invalid ignore delete chainlength insert insert_failed "
    "drop early_drop icmp_error  expect_new expect_create expect_delete search_restart",
}
ERAS = tuple(HEADERS)

# A kernel's defaults (domain.md), the same table drift compares against.
TIMEOUTS = dict(DEFAULT_TIMEOUTS)

TABLE_LINES = [
    "tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=443 "
    "src=10.0.0.2 dst=10.0.0.1 sport=443 dport=40000 [ASSURED] mark=0 use=1",
    "tcp      6 119 SYN_SENT src=10.0.0.1 dst=10.0.0.3 sport=40001 dport=443 [UNREPLIED] "
    "src=10.0.0.3 dst=10.0.0.1 sport=443 dport=40001 mark=0 use=1",
    "tcp      6 100 TIME_WAIT src=10.0.0.4 dst=10.0.0.2 sport=40002 dport=80 "
    "src=10.0.0.2 dst=10.0.0.4 sport=80 dport=40002 [ASSURED] mark=0 use=1",
    "udp      17 29 src=10.0.0.1 dst=10.0.0.53 sport=5353 dport=53 [UNREPLIED] "
    "src=10.0.0.53 dst=10.0.0.1 sport=53 dport=5353 mark=0 use=1",
    "icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=1 src=10.0.0.2 dst=10.0.0.1 "
    "type=0 code=0 id=1 mark=0 use=1",
    "unknown  47 599 src=10.0.0.1 dst=10.0.0.9 src=10.0.0.9 dst=10.0.0.1 mark=0 use=1",
]


def _write(root, rel, text, mode=0o644):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, mode)
    return path


def stat_text(era, cpus=2, drop=0, early_drop=0, entries=0, insert_failed=0):
    header = HEADERS[era].split()
    lines = [HEADERS[era]]
    for cpu in range(cpus):
        row = []
        for name in header:
            value = {
                "entries": entries,
                # Counters are per CPU: put the whole count on CPU 0 only for
                # drop, split others so summing is exercised.
                "drop": drop if cpu == 0 else 0,
                "early_drop": early_drop // cpus + (early_drop % cpus if cpu == 0 else 0),
                "insert_failed": insert_failed if cpu == cpus - 1 else 0,
                "found": 7,
                "new": 3,
            }.get(name, 0)
            row.append(f"{value:08x}")
        lines.append(" ".join(row))
    return "\n".join(lines) + "\n"


def build_root(
    root,
    era="6.17",
    count=0,
    maximum=262144,
    buckets=262144,
    drop=0,
    early_drop=0,
    mem_kb=65_969_476,
    slab_size=256,
    netns=False,
    table=None,
):
    """Write a host of ``era`` under ``root``; return ``root``.

    ``netns=True`` makes the global knobs read-only, as inside a non-initial
    network namespace.
    """
    root = str(root)
    table = TABLE_LINES if table is None else table
    global_mode = 0o444 if netns else 0o644
    if era == "centos5":
        base = "proc/sys/net/ipv4/netfilter"
        prefix = "ip_conntrack_"
        _write(root, "proc/sys/net/ipv4/ip_conntrack_max", f"{maximum}\n", global_mode)
        stat, tablefile, module = "proc/net/stat/ip_conntrack", "proc/net/ip_conntrack", "ip_conntrack"
        lines = table
    else:
        base = "proc/sys/net/netfilter"
        prefix = "nf_conntrack_"
        _write(root, "proc/sys/net/nf_conntrack_max", f"{maximum}\n", global_mode)
        stat, tablefile, module = "proc/net/stat/nf_conntrack", "proc/net/nf_conntrack", "nf_conntrack"
        lines = [f"ipv4     2 {line}" for line in table]
    _write(root, f"{base}/{prefix}count", f"{count}\n")
    _write(root, f"{base}/{prefix}max", f"{maximum}\n", global_mode)
    _write(root, f"{base}/{prefix}buckets", f"{buckets}\n", 0o444)
    for name, value in TIMEOUTS.items():
        _write(root, f"{base}/{prefix}{name}", f"{value}\n")
    _write(root, f"sys/module/{module}/parameters/hashsize", f"{buckets}\n", 0o444 if netns else 0o600)
    _write(root, stat, stat_text(era, drop=drop, early_drop=early_drop, entries=count))
    _write(root, tablefile, "".join(line + "\n" for line in lines))
    _write(root, "proc/meminfo", f"MemTotal:       {mem_kb} kB\nMemFree:        1000 kB\n")
    _write(
        root,
        "proc/slabinfo",
        "slabinfo - version: 2.1\n"
        "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>\n"
        f"{module}           0      0    {slab_size}   16    1 : tunables    0    0    0 : slabdata      0      0      0\n",
        0o400,
    )
    return root
