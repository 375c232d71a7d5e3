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

import salt.client
import salt.utils.minions
from salt.exceptions import SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "conntrack"

RANK = {"critical": 3, "warning": 2, "unknown": 1, "ok": 0}


def __virtual__():
    return __virtualname__


def _int(value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"not an integer: {value!r}")
    return value


def _percent(value, name):
    """A threshold argument as a float from 0 to 100, or SaltInvocationError."""
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise SaltInvocationError(f"{name} must be a usage percent from 0 to 100, got {value!r}") from None
    if not 0 <= number <= 100:
        raise SaltInvocationError(f"{name} must be a usage percent from 0 to 100, got {value!r}")
    return number


def _count(value, name, low):
    """A count argument as an int of at least ``low``, or SaltInvocationError."""
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        number = int(str(value).strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError, OverflowError):
        raise SaltInvocationError(f"{name} must be a whole number of at least {low}, got {value!r}") from None
    if number < low:
        raise SaltInvocationError(f"{name} must be a whole number of at least {low}, got {value!r}")
    return number


def _row(minion, status, warning, critical, source):
    """One minion's row: the same verdict rules as ``conntrack.check``."""
    row = {
        "minion": minion,
        "verdict": "unknown",
        "usage": None,
        "count": None,
        "max": None,
        "drop": None,
        "early_drop": None,
        "insert_failed": None,
        "reasons": [],
        "source": source,
    }
    if not isinstance(status, dict):
        row["reasons"].append(f"no usable conntrack.status ({str(status)[:200]})")
        return row
    try:
        count = _int(status["count"])
        maximum = _int(status["max"])
        stats = status.get("stats") or {}
        drop = _int(stats.get("drop", 0))
        early_drop = _int(stats.get("early_drop", 0))
        insert_failed = _int(stats.get("insert_failed", 0))
    except (KeyError, TypeError, ValueError) as err:
        row["reasons"].append(f"malformed conntrack.status: {err}")
        return row
    usage = round(100.0 * count / maximum, 2) if maximum else 0.0
    row.update(
        usage=usage,
        count=count,
        max=maximum,
        drop=drop,
        early_drop=early_drop,
        insert_failed=insert_failed,
        verdict="ok",
    )

    def raise_to(level, reason):
        row["reasons"].append(reason)
        if RANK[level] > RANK[row["verdict"]]:
            row["verdict"] = level

    if usage >= critical:
        raise_to("critical", f"usage {usage}% ({count}/{maximum}) >= {critical}%")
    elif usage >= warning:
        raise_to("warning", f"usage {usage}% ({count}/{maximum}) >= {warning}%")
    if drop:
        raise_to("critical", f"{drop} packets dropped: the table was full (stat drop)")
    if early_drop:
        raise_to("warning", f"{early_drop} entries evicted early: the table was at its limit")
    return row


def _targeted(tgt, tgt_type):
    try:
        found = salt.utils.minions.CkMinions(__opts__).check_minions(tgt, tgt_type)  # noqa: F821
        return set(found.get("minions", []))
    except Exception as err:  # pylint: disable=broad-except
        log.debug("conntrack.fleet: cannot expand target %s: %s", tgt, err)
        return set()


def _from_mine(tgt, tgt_type):
    return __salt__["mine.get"](tgt, "conntrack.status", tgt_type=tgt_type) or {}  # noqa: F821


def _live(tgt, tgt_type, timeout):
    client = salt.client.get_local_client(__opts__["conf_file"])  # noqa: F821
    found = {}
    for answer in client.cmd_iter(tgt, "conntrack.status", tgt_type=tgt_type, timeout=timeout):
        for minion, ret in answer.items():
            if isinstance(ret, dict) and "ret" in ret:
                found[minion] = ret["ret"] if ret.get("retcode", 0) == 0 else str(ret["ret"])
            else:
                found[minion] = ret
    return found


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
    ``insert_failed``, ``reasons`` and ``source`` (``mine`` or ``live``). The
    verdict follows ``conntrack.check``: usage against ``warning``/``critical``,
    any ``drop`` is critical, any ``early_drop`` a warning. Sorted by verdict,
    then usage, then drops. A targeted minion without data (no mine entry,
    no answer) is ``unknown``.

    live
        Ask the minions now instead of reading the mine. Default False: at a
        few thousand minions the mine answers in well under a second and
        publishes nothing; a live query waits ``timeout`` for the slowest.

    tgt, tgt_type
        Which minions. Default every minion (``*``, glob).

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
    warning = _percent(warning, "warning")
    critical = _percent(critical, "critical")
    if warning > critical:
        raise SaltInvocationError(f"warning ({warning}%) must not be above critical ({critical}%)")
    if verdict is not None and verdict not in RANK:
        raise SaltInvocationError(f"verdict must be one of {', '.join(RANK)}, got {verdict!r}")
    if limit is not None:
        limit = _count(limit, "limit", 0)
    if live:
        timeout = _count(timeout if timeout is not None else __opts__.get("timeout", 5), "timeout", 1)  # noqa: F821
        data = _live(tgt, tgt_type, timeout)
        source = "live"
    else:
        data = _from_mine(tgt, tgt_type)
        source = "mine"
    rows = [_row(minion, status, warning, critical, source) for minion, status in data.items()]
    missing = _targeted(tgt, tgt_type) - set(data)
    for minion in missing:
        row = _row(minion, None, warning, critical, source)
        row["reasons"] = [
            "did not answer in time"
            if live
            else "no conntrack.status in the mine (mine_functions not set, or not yet updated)"
        ]
        rows.append(row)
    rows.sort(
        key=lambda r: (
            -RANK[r["verdict"]],
            -(r["usage"] or 0.0),
            -(r["drop"] or 0),
            r["minion"],
        )
    )
    if verdict is not None:
        rows = [r for r in rows if RANK[r["verdict"]] >= RANK[verdict]]
    if limit is not None:
        rows = rows[:limit]
    return rows
