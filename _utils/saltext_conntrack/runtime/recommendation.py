"""The table size a host should have, what it costs, and whether to change: ``conntrack.recommend``."""

from salt.exceptions import SaltInvocationError

from saltext_conntrack.common import numbers
from saltext_conntrack.runtime import sizing, snapshot


def size(host, ram, arch, hash_ratio, flavour, st):
    """``(ram, bits, max, hashsize, bucket_rule)``: the arguments checked, then the rules applied."""
    ram_bytes = sizing.host_ram(host.root) if ram is None else sizing.parse_ram(ram)
    bits = host.bits if arch is None else numbers.integer(arch, "arch", 32, 64)
    if bits not in (32, 64):
        raise SaltInvocationError(f"arch must be 32 or 64, got {bits}")
    if hash_ratio is None:
        ratio, why = sizing.kernel_ratio(host.release, flavour)
    else:
        ratio = numbers.integer(hash_ratio, "hash_ratio", 1, 64)
        why = f"hash_ratio={ratio} given: buckets = max / {ratio}"
    maximum = sizing.ceiling(ram_bytes, bits)
    hashsize, bucket_rule = sizing.buckets_for(maximum, ratio, why, st and st["hashsize"])
    return ram_bytes, bits, maximum, hashsize, bucket_rule


def recommend(host, st, ram=None, arch=None, hash_ratio=None):
    """The recommendation, compared with the status ``st`` (None when conntrack is not loaded)."""
    flavour = snapshot.known_flavour(host)
    ram_bytes, bits, maximum, hashsize, bucket_rule = size(host, ram, arch, hash_ratio, flavour, st)
    entry_size = sizing.entry_size(host.root, flavour)
    pointer = bits // 8
    ret = {
        "ram": ram_bytes,
        "arch": bits,
        "max": maximum,
        "hashsize": hashsize,
        "bucket_rule": bucket_rule,
        "entry_size": entry_size,
        "memory_bytes": None if entry_size is None else maximum * entry_size + hashsize * pointer,
        "rules": {
            "max": sizing.MAX_RULE,
            "hashsize": bucket_rule,
            "memory": sizing.memory_rule(entry_size, flavour, pointer),
        },
        "current": None,
        "needs_change": None,
        "reasons": [],
    }
    if st is None:
        ret["reasons"].append("conntrack is not loaded: nothing to compare with")
        return ret
    ret["current"] = {"max": st["max"], "hashsize": st["hashsize"], "count": st["count"]}
    sizing.compare(ret, st)
    return ret
