"""conntrack_remediate.reapply through the real loader on a fixture host: it re-applies
the conntrack formula only when the host's own conntrack.drift lists a difference,
and at most once per interval."""

import json
import os

from tests.support.fixtures import build_root

MAX = "net.netfilter.nf_conntrack_max"


def test_reapply_only_on_own_drift_and_rate_limited(make_loaders, tmp_path, file_roots):
    root = build_root(tmp_path / "host", maximum=262144, buckets=262144)
    os.makedirs(os.path.join(root, "etc", "sysctl.d"))
    cache = tmp_path / "cache"
    loaders = make_loaders(root, cachedir=str(cache), file_roots=file_roots)
    mods = loaders.modules

    nothing = mods.conntrack_remediate.reapply(interval=0, fire_event=False)
    assert (nothing["reapplied"], nothing["refused"]) == (False, "not_confirmed")

    # What conntrack.tuned last set is not what the kernel has now (a reload undid it).
    os.makedirs(cache / "conntrack", exist_ok=True)
    (cache / "conntrack" / "tuned.json").write_text(json.dumps({"set_at": 1.0, "values": {MAX: 300000}}))
    done = mods.conntrack_remediate.reapply(interval=3600, fire_event=False)
    assert done["reapplied"] is True, done
    assert [d["key"] for d in done["differences"]] == [MAX]
    with open(os.path.join(root, "proc/sys/net/netfilter/nf_conntrack_max"), encoding="ascii") as fh:
        assert int(fh.read()) > 262144  # the formula's max: auto never lowers, and it raised the limit

    (cache / "conntrack" / "tuned.json").write_text(json.dumps({"set_at": 1.0, "values": {MAX: 999999}}))
    again = mods.conntrack_remediate.reapply(interval=3600, fire_event=False)
    assert (again["reapplied"], again["refused"]) == (False, "rate_limited")
