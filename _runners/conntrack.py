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

from typing import Any

import salt.cache
import salt.client
import salt.utils.minions
import salt.version

from saltext_conntrack import common, report

__virtualname__ = "conntrack"

# Set by Salt's loader when it loads this file (declared here for readers and type checkers).
__opts__: dict[str, Any]
__context__: dict[str, Any]

# Where the master keeps a minion's mine: Salt 3008 in bank "mine" under the
# minion's id, 3006 and 3007 in bank "minions/<id>" under "mine"
# (salt/daemons/masterapi.py, _mine and _mine_get).
MINE_BY_ID = salt.version.__saltstack_version__.major >= 3008

_arguments = report.fleet.arguments  # tests check the arguments without a master


def __virtual__():
    return __virtualname__


def _mine_location(minion):
    """``(bank, key)`` of ``minion``'s mine data in the master's cache, for this Salt."""
    return ("mine", minion) if MINE_BY_ID else (f"minions/{minion}", "mine")


def _from_mine(checker, targeted):
    """``{minion: status}`` from the master's mine cache, one read per targeted minion.

    The same data and ACLs as ``mine.get``, without a second expansion of the
    target or the master-side setup ``mine.get`` pays for.
    """
    if not report.fleet.mine_allowed(__opts__.get("mine_get"), __opts__["id"]):
        return {}
    cache = salt.cache.factory(__opts__)

    def targets_master(tgt, tgt_type):
        return __opts__["id"] in checker.check_minions(tgt, tgt_type).get("minions", [])

    return report.fleet.from_mine(targeted, lambda minion: cache.fetch(*_mine_location(minion)), targets_master)


def _live(tgt, tgt_type, timeout):
    client = salt.client.get_local_client(__opts__["conf_file"])
    found = {}
    for answer in client.cmd_iter(tgt, report.fleet.FUNCTION, tgt_type=tgt_type, timeout=timeout):
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

    Rows hold, in this order, ``minion``, ``verdict`` (``critical``,
    ``warning``, ``unknown``, ``ok``), ``usage`` (percent), ``count``, ``max``,
    ``drop`` (since boot), ``reason`` (the first of ``reasons``), then
    ``early_drop``, ``insert_failed``, ``recent`` (the rise of those counters
    the minion saw, and the ``seconds`` it covers), ``reasons`` and ``source``
    (``mine`` or ``live``). With ``--out=table`` the rows are the scan view:
    a header and one line per minion (minion, verdict, usage, count, max,
    drops, full in, the first reason) within 160 columns; ``--out=json`` has every
    key. The verdict is ``conntrack.check``'s, word for word: usage against
    ``warning``/``critical``; drops in ``recent`` are
    critical, early drops a warning; drops since boot that are all past are
    a note; a table full within 900 s at its current rise (the minion's
    ``trend``, also in the row) a warning, within 120 s critical. Sorted by
    verdict, then usage, then drops. A targeted minion without data (no mine
    entry, no answer) is ``unknown``. With no data at all, the result is a
    failure that says why and, for the mine, which ``mine_functions`` lines
    to add.

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
        salt-run conntrack.fleet --out=table verdict=warning
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
    targeted = checker.check_minions(tgt, report.fleet.expand_type(tgt_type, live)).get("minions", [])
    data = _live(tgt, tgt_type, timeout) if live else _from_mine(checker, targeted)
    if not data:
        try:
            __context__["retcode"] = 1
        except NameError:
            pass
        return report.fleet.no_data(tgt, tgt_type, targeted, live, timeout)
    rows = report.fleet.rows(data, targeted, warning, critical, live, verdict, limit)
    # Salt's table outputter sorts dict keys and wraps long cells: give it the
    # scan view (header, then one short row per minion) instead.
    return report.table.fleet(rows) if report.table.wanted(__opts__, "conntrack.fleet") else rows
