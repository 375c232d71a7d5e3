"""The fleet report: one row per minion, judged by the one verdict, worst first.

The runner reads the data (the master's mine cache, or a live publish) and
passes it in; everything decided about it is here.
"""

import re
import shlex

import salt.utils.mine
from salt.exceptions import SaltInvocationError

from saltext_conntrack.common import numbers
from saltext_conntrack.report import verdict

FUNCTION = "conntrack.status"
TGT_TYPES = (
    "glob",
    "pcre",
    "list",
    "grain",
    "grain_pcre",
    "pillar",
    "pillar_pcre",
    "pillar_exact",
    "compound",
    "ipcidr",
    "nodegroup",
    "range",
)
_CLI_FLAGS = {"pcre": "-E ", "list": "-L ", "grain": "-G ", "grain_pcre": "-P ", "pillar": "-I ", "pillar_pcre": "-J ",
              "compound": "-C ", "ipcidr": "-S ", "nodegroup": "-N ", "range": "-R "}  # fmt: skip
MINE_SETUP = "mine_functions:\n  conntrack.status: []\nmine_interval: 5\n"


def arguments(tgt, tgt_type, warning, critical, verdict_, limit):
    """``(warning, critical, limit)`` checked, after the target and the verdict filter."""
    if isinstance(tgt, list):
        if not 0 < len(tgt) <= 100000:
            raise SaltInvocationError(f"tgt as a list must name 1 to 100000 minions, got {len(tgt)}")
        for item in tgt:
            numbers.text(item, "a minion id in tgt", 256)
    else:
        numbers.text(tgt, "tgt", 4096)
    if not isinstance(tgt_type, str) or tgt_type not in TGT_TYPES:
        raise SaltInvocationError(f"tgt_type must be one of {', '.join(TGT_TYPES)}, got {numbers.shown(tgt_type)}")
    warning = numbers.number(warning, "warning", 0, 100)
    critical = numbers.number(critical, "critical", 0, 100)
    if warning > critical:
        raise SaltInvocationError(f"warning ({warning}%) must not be above critical ({critical}%)")
    if verdict_ is not None and (not isinstance(verdict_, str) or verdict_ not in verdict.RANK):
        raise SaltInvocationError(f"verdict must be one of {', '.join(verdict.RANK)}, got {numbers.shown(verdict_)}")
    if limit is not None:
        limit = numbers.integer(limit, "limit", 0, 10**9)
    return warning, critical, limit


def expand_type(tgt_type, live):
    """The target type to expand with: as with ``mine.get``, pillar values match exactly, never as globs."""
    if live:
        return tgt_type
    return {"pillar": "pillar_exact", "compound": "compound_pillar_exact"}.get(tgt_type, tgt_type)


def row(minion, status, warning, critical, source):
    """One minion's row, judged by the one verdict (``conntrack.check``'s rules and words).

    Keys in the order an operator reads them (JSON keeps it): who, how bad,
    the numbers, the first reason; then the detail.
    """
    ret = {
        "minion": minion,
        "verdict": "unknown",
        "usage": None,
        "count": None,
        "max": None,
        "drop": None,
        "reason": "",
        "early_drop": None,
        "insert_failed": None,
        "recent": None,
        "trend": None,
        "reasons": [],
        "source": source,
    }
    if not isinstance(status, dict):
        ret["reasons"].append(f"no usable conntrack.status ({numbers.shown(status, 200)})")
        return _with_reason(ret)
    try:
        clean = verdict.validated(status)
    except ValueError as err:
        ret["reasons"].append(f"malformed conntrack.status: {err}")
        return _with_reason(ret)
    judged = verdict.assess(clean, warning, critical)
    ret.update(
        judged, count=clean["count"], max=clean["max"], recent=clean["recent"], trend=clean["trend"], **clean["stats"]
    )
    return _with_reason(ret)


def _with_reason(one):
    one["reason"] = one["reasons"][0] if one["reasons"] else ""
    return one


def mine_allowed(acl, master_id):
    """The master's own ``mine_get`` ACL, as ``mine.get`` applies it to the runner."""
    if acl is None:
        return True
    if not isinstance(acl, dict):
        return False
    perms = set()
    for match, funs in acl.items():
        if re.match(match, master_id) and isinstance(funs, list):
            perms.update(funs)
    return any(re.match(perm, FUNCTION) for perm in perms)


def unwrap(entry, allowed, targets_master):
    """The status inside a mine entry; None when the minion's ``allow_tgt`` shuts the master out.

    ``targets_master(tgt, tgt_type)`` says whether a target matches this
    master; ``allowed`` keeps its answers across minions.
    """
    if not (isinstance(entry, dict) and salt.utils.mine.MINE_ITEM_ACL_ID in entry):
        return entry
    if "allow_tgt" in entry:
        key = (str(entry["allow_tgt"]), str(entry.get("allow_tgt_type", "glob")))
        if key not in allowed:
            allowed[key] = targets_master(entry["allow_tgt"], entry.get("allow_tgt_type", "glob"))
        if not allowed[key]:
            return None
    return entry.get(salt.utils.mine.MINE_ITEM_ACL_DATA)


def from_mine(targeted, fetch, targets_master):
    """``{minion: status}`` from each targeted minion's mine (``fetch(minion)``), with ``mine.get``'s ACLs."""
    found, allowed = {}, {}
    for minion in targeted:
        mine = fetch(minion)
        if isinstance(mine, dict) and FUNCTION in mine:
            status = unwrap(mine[FUNCTION], allowed, targets_master)
            if status is not None:
                found[minion] = status
    return found


def _salt_command(tgt, tgt_type):
    """``salt TGT mine.update`` to paste into a shell: the target shell-quoted, a list joined by commas."""
    target = ",".join(map(str, tgt)) if isinstance(tgt, (list, tuple)) else str(tgt)
    if tgt_type == "pillar_exact":
        target, tgt_type = f"P@{target}", "compound"  # no flag of its own: the compound form
    flag = _CLI_FLAGS.get(tgt_type, "")
    return f"salt {flag}{shlex.quote(target)} mine.update"


def no_data(tgt, tgt_type, targeted, live, timeout):
    """Why there is nothing to show, and the setup that fixes it (a failed result)."""
    if not targeted:
        comment = f"no minion matches tgt={numbers.shown(tgt)} tgt_type={tgt_type}"
    elif live:
        comment = f"none of the {len(targeted)} targeted minions answered {FUNCTION} within {timeout} s"
    else:
        comment = (
            f"none of the {len(targeted)} targeted minions has {FUNCTION} in the mine: the mine is "
            f"not set up for it, or not updated yet. Add these lines to the minions' config (or "
            f"pillar), then run: {_salt_command(tgt, tgt_type)}"
        )
    ret = {"result": False, "retcode": 1, "comment": comment, "targeted": len(targeted)}
    if not live:
        ret["add_to_minion_config"] = MINE_SETUP
    return ret


def sort_key(one):
    recent = one["recent"] or {}
    return (
        -verdict.RANK[one["verdict"]],
        -(one["usage"] or 0.0),
        -recent.get("drop", 0),
        -(one["drop"] or 0),
        one["minion"],
    )


def rows(data, targeted, warning, critical, live, verdict_=None, limit=None):
    """Every row, the silent targeted minions as ``unknown``, worst first, filtered and cut."""
    source = "live" if live else "mine"
    found = [row(minion, status, warning, critical, source) for minion, status in data.items()]
    for minion in set(targeted).difference(data):
        silent = row(minion, None, warning, critical, source)
        silent["reasons"] = [
            "did not answer in time"
            if live
            else "no conntrack.status in the mine (mine_functions not set, or not yet updated)"
        ]
        found.append(_with_reason(silent))
    found.sort(key=sort_key)
    if verdict_ is not None:
        found = [r for r in found if verdict.RANK[r["verdict"]] >= verdict.RANK[verdict_]]
    return found if limit is None else found[:limit]
