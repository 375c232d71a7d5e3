"""
Fleet view of the conntrack table: every minion's usage, drops and verdict, worst first.

By default the report reads the Salt mine, so it costs the master one cache
read per minion and publishes nothing: it is the way to look at thousands of
minions. Each minion publishes its own ``conntrack.status`` to the mine:

.. code-block:: yaml

    # minion config (or pillar)
    mine_functions:
      conntrack.status: []
    mine_interval: 5          # minutes; the mine's data is at most this old

``live=True`` asks the minions instead (one publish, answers streamed as they
arrive, ``timeout`` seconds for the stragglers); minions that did not answer
are listed with the verdict ``unknown``.

CLI Example:

.. code-block:: bash

    salt-run conntrack.fleet
    salt-run conntrack.fleet limit=20 --out=json
    salt-run conntrack.fleet tgt='web*' live=True timeout=10
    salt-run conntrack.fleet verdict=critical
"""

import logging
import re

import salt.cache
import salt.client
import salt.utils.mine
import salt.utils.minions
import salt.version
from salt.exceptions import SaltInvocationError

from saltext_conntrack import common, report

log = logging.getLogger(__name__)

__virtualname__ = "conntrack"

FUNCTION = "conntrack.status"
RANK = report.verdict.RANK  # critical > warning > unknown > ok
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
MINE_SETUP = "mine_functions:\n  conntrack.status: []\nmine_interval: 5\n"


def __virtual__():
    return __virtualname__


def _row(minion, status, warning, critical, source):
    """One minion's row, judged by the one verdict (``conntrack.check``'s rules and words)."""
    row = {
        "minion": minion,
        "verdict": "unknown",
        "usage": None,
        "count": None,
        "max": None,
        "drop": None,
        "early_drop": None,
        "insert_failed": None,
        "recent": None,
        "reasons": [],
        "source": source,
    }
    if not isinstance(status, dict):
        row["reasons"].append(f"no usable conntrack.status ({str(status)[:200]})")
        return row
    try:
        clean = report.verdict.validated(status)
    except ValueError as err:
        row["reasons"].append(f"malformed conntrack.status: {err}")
        return row
    judged = report.verdict.assess(clean, warning, critical)
    row.update(judged, count=clean["count"], max=clean["max"], recent=clean["recent"], **clean["stats"])
    return row


def _mine_allowed():
    """The master's own ``mine_get`` ACL, as ``mine.get`` applies it to the runner."""
    acl = __opts__.get("mine_get")
    if acl is None:
        return True
    if not isinstance(acl, dict):
        return False
    perms = set()
    for match, funs in acl.items():
        if re.match(match, __opts__["id"]) and isinstance(funs, list):
            perms.update(funs)
    return any(re.match(perm, FUNCTION) for perm in perms)


def _unwrap(checker, entry, allowed):
    """The status inside a mine entry; None when the minion's ``allow_tgt`` shuts the master out."""
    if not (isinstance(entry, dict) and salt.utils.mine.MINE_ITEM_ACL_ID in entry):
        return entry
    if "allow_tgt" in entry:
        key = (str(entry["allow_tgt"]), str(entry.get("allow_tgt_type", "glob")))
        if key not in allowed:
            found = checker.check_minions(entry["allow_tgt"], entry.get("allow_tgt_type", "glob"))
            allowed[key] = __opts__["id"] in found.get("minions", [])
        if not allowed[key]:
            return None
    return entry.get(salt.utils.mine.MINE_ITEM_ACL_DATA)


# Where the master keeps a minion's mine: Salt 3008 in bank "mine" under the
# minion's id, 3006 and 3007 in bank "minions/<id>" under "mine"
# (salt/daemons/masterapi.py, _mine and _mine_get).
MINE_BY_ID = salt.version.__saltstack_version__.major >= 3008


def mine_location(minion):
    """``(bank, key)`` of ``minion``'s mine data in the master's cache, for this Salt."""
    return ("mine", minion) if MINE_BY_ID else (f"minions/{minion}", "mine")


def _from_mine(checker, targeted):
    """``{minion: status}`` from the master's mine cache, one read per targeted minion.

    The same data and ACLs as ``mine.get``, without a second expansion of the
    target or the master-side setup ``mine.get`` pays for.
    """
    if not _mine_allowed():
        return {}
    cache = salt.cache.factory(__opts__)
    found, allowed = {}, {}
    for minion in targeted:
        mine = cache.fetch(*mine_location(minion))
        if isinstance(mine, dict) and FUNCTION in mine:
            status = _unwrap(checker, mine[FUNCTION], allowed)
            if status is not None:
                found[minion] = status
    return found


def _live(tgt, tgt_type, timeout):
    client = salt.client.get_local_client(__opts__["conf_file"])
    found = {}
    for answer in client.cmd_iter(tgt, FUNCTION, tgt_type=tgt_type, timeout=timeout):
        for minion, ret in answer.items():
            if isinstance(ret, dict) and "ret" in ret:
                found[minion] = ret["ret"] if ret.get("retcode", 0) == 0 else str(ret["ret"])
            else:
                found[minion] = ret
    return found


def _no_data(tgt, tgt_type, targeted, live, timeout):
    """Why there is nothing to show, and the setup that fixes it (a failed result)."""
    if not targeted:
        comment = f"no minion matches tgt={tgt!r} tgt_type={tgt_type}"
    elif live:
        comment = f"none of the {len(targeted)} targeted minions answered {FUNCTION} within {timeout} s"
    else:
        comment = (
            f"none of the {len(targeted)} targeted minions has {FUNCTION} in the mine: the mine is "
            f"not set up for it, or not updated yet. Add these lines to the minions' config (or "
            f"pillar), then run: salt {tgt!r} mine.update"
        )
    ret = {"result": False, "retcode": 1, "comment": comment, "targeted": len(targeted)}
    if not live:
        ret["add_to_minion_config"] = MINE_SETUP
    try:
        __context__["retcode"] = 1
    except NameError:
        pass
    return ret


def _arguments(tgt, tgt_type, warning, critical, verdict_, limit):
    if isinstance(tgt, list):
        if not 0 < len(tgt) <= 100000:
            raise SaltInvocationError(f"tgt as a list must name 1 to 100000 minions, got {len(tgt)}")
        for item in tgt:
            common.numbers.text(item, "a minion id in tgt", 256)
    else:
        common.numbers.text(tgt, "tgt", 4096)
    if not isinstance(tgt_type, str) or tgt_type not in TGT_TYPES:
        raise SaltInvocationError(f"tgt_type must be one of {', '.join(TGT_TYPES)}, got {tgt_type!r}"[:300])
    warning = common.numbers.number(warning, "warning", 0, 100)
    critical = common.numbers.number(critical, "critical", 0, 100)
    if warning > critical:
        raise SaltInvocationError(f"warning ({warning}%) must not be above critical ({critical}%)")
    if verdict_ is not None and (not isinstance(verdict_, str) or verdict_ not in RANK):
        raise SaltInvocationError(f"verdict must be one of {', '.join(RANK)}, got {verdict_!r}"[:300])
    if limit is not None:
        limit = common.numbers.integer(limit, "limit", 0, 10**9)
    return warning, critical, limit


def _sort_key(row):
    recent = row["recent"] or {}
    return (-RANK[row["verdict"]], -(row["usage"] or 0.0), -recent.get("drop", 0), -(row["drop"] or 0), row["minion"])


def fleet(
    live=False,
    tgt="*",
    tgt_type="glob",
    timeout=None,
    warning=75,
    critical=90,
    verdict=None,
    limit=None,
):
    """
    Every targeted minion's conntrack usage, drops and verdict, worst first.

    Rows hold ``minion``, ``verdict`` (``critical``, ``warning``, ``unknown``,
    ``ok``), ``usage`` (percent), ``count``, ``max``, ``drop``, ``early_drop``,
    ``insert_failed`` (since boot), ``recent`` (the rise of those counters the
    minion saw, and the ``seconds`` it covers), ``reasons`` and ``source``
    (``mine`` or ``live``). The verdict is ``conntrack.check``'s, word for
    word: usage against ``warning``/``critical``; drops in ``recent`` are
    critical, early drops a warning; drops since boot that are all past are
    a note. Sorted by verdict, then usage, then drops. A targeted minion
    without data (no mine entry, no answer) is ``unknown``. With no data at
    all, the result is a failure that says why and, for the mine, which
    ``mine_functions`` lines to add.

    live
        Ask the minions now instead of reading the mine. Default False: at
        10,000 minions the mine answers in seconds and publishes nothing; a
        live query waits ``timeout`` for the slowest.

    tgt, tgt_type
        Which minions. Default every minion (``*``, glob). As with
        ``mine.get``, pillar and compound targets match pillar values exactly.

    timeout
        Seconds to wait for live answers. Default the master's ``timeout``.

    warning, critical
        Usage thresholds in percent. Default 75 and 90.

    verdict
        Keep only rows at this verdict or worse, in the order
        critical > warning > unknown > ok (``warning`` keeps warning and critical).

    limit
        Keep only the first ``limit`` rows (the worst).

    CLI Example:

    .. code-block:: bash

        salt-run conntrack.fleet
        salt-run conntrack.fleet live=True timeout=10
        salt-run conntrack.fleet tgt='G@role:lb' tgt_type=compound verdict=warning limit=50
    """
    warning, critical, limit = _arguments(tgt, tgt_type, warning, critical, verdict, limit)
    live = common.numbers.boolean(live, "live")
    if timeout is not None or live:
        timeout = common.numbers.integer(
            timeout if timeout is not None else __opts__.get("timeout", 5), "timeout", 1, 86400
        )
    checker = salt.utils.minions.CkMinions(__opts__)
    # mine.get's target types: pillar values match exactly, never as globs.
    expand_type = (
        tgt_type if live else {"pillar": "pillar_exact", "compound": "compound_pillar_exact"}.get(tgt_type, tgt_type)
    )
    targeted = checker.check_minions(tgt, expand_type).get("minions", [])
    data = _live(tgt, tgt_type, timeout) if live else _from_mine(checker, targeted)
    if not data:
        return _no_data(tgt, tgt_type, targeted, live, timeout)
    source = "live" if live else "mine"
    rows = [_row(minion, status, warning, critical, source) for minion, status in data.items()]
    for minion in set(targeted).difference(data):
        row = _row(minion, None, warning, critical, source)
        row["reasons"] = [
            "did not answer in time"
            if live
            else "no conntrack.status in the mine (mine_functions not set, or not yet updated)"
        ]
        rows.append(row)
    rows.sort(key=_sort_key)
    if verdict is not None:
        rows = [r for r in rows if RANK[r["verdict"]] >= RANK[verdict]]
    return rows if limit is None else rows[:limit]
