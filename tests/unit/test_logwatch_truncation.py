"""After copytruncate (``logwatch.truncation``): what counts as lost.

Moved from tests/unit/test_beacon_parsing.py (its sections); ``env`` is
``tests.support.beacon_env.Env`` (the beacon file loaded with stand-in dunders).
"""

import shutil

from tests.support.beacon_env import full, only_full, seen


def test_truncation_with_unread_bytes_is_lost_with_their_number(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1) + full(2)[:50])  # a line still being written: seen, not yet read
    env.run({"min_interval": 0})
    env.log.write_text("")  # truncated, no copy anywhere
    env.append(full(3))
    event = only_full(env.run({"min_interval": 0}))
    assert seen(event) == {3: 1}
    assert (event["lost"], event["lost_bytes"], event["unverified"]) == (1, 50, 0)


def test_copytruncate_with_nothing_unread_is_not_lost(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1))
    env.run({"min_interval": 0})
    shutil.copy(env.log, f"{env.log}.1")
    with open(env.log, "r+") as fh:
        fh.truncate(0)
    env.append(full(2))
    event = only_full(env.run({"min_interval": 0}))
    assert seen(event) == {2: 1} and (event["lost"], event["unverified"]) == (0, 0)
