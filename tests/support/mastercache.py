"""A Salt master's cache with many minions, laid out the way Salt itself stores it.

``master_dir(path)`` writes a master config whose pki_dir and cachedir live
under ``path`` (and whose runner and utils dirs are this working tree's), and
``populate(opts, statuses)`` accepts a key for each minion and stores its
mine through Salt's own cache API (``salt.cache``, bank ``mine``, one key per
minion, ``{function: data}``), as the master does when a minion sends
``mine.update``. No daemon runs: ``salt-run mine.get`` and
``salt-run conntrack.fleet`` read it as they read a live master's.
"""

import os

import salt.version
import yaml

from tests.conftest import LOADER_DIRS

MINE_BY_ID = salt.version.__saltstack_version__.major >= 3008

# The key files' content is never read to list or target minions.
PUB = "-----BEGIN PUBLIC KEY-----\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAL0+synthetic+key+for+tests+only+AAAAAQAB\n-----END PUBLIC KEY-----\n"


def master_dir(path, **overrides):
    """Write ``path/master`` and return the loaded master opts."""
    import salt.config

    path = os.path.abspath(str(path))
    conf = {
        "id": "bench_master",
        "root_dir": path,
        "pki_dir": f"{path}/pki",
        "cachedir": f"{path}/cache",
        "sock_dir": f"{path}/sock",
        "log_file": f"{path}/master.log",
        "key_logfile": f"{path}/key.log",
        "pidfile": f"{path}/master.pid",
        "user": __import__("getpass").getuser(),
        "minion_data_cache": True,
        "runner_dirs": LOADER_DIRS["runner_dirs"],
        "utils_dirs": LOADER_DIRS["utils_dirs"],
        **overrides,
    }
    for sub in ("pki/minions", "cache/proc", "sock"):
        os.makedirs(f"{path}/{sub}", exist_ok=True)
    with open(f"{path}/master", "w", encoding="utf-8") as fh:
        yaml.safe_dump(conf, fh)
    return salt.config.master_config(f"{path}/master")


def populate(opts, statuses):
    """Accept every minion of ``statuses`` and store its mine.

    ``statuses`` maps minion id to its ``conntrack.status`` dict, or to None
    for a minion with a key and an empty mine.
    """
    import salt.cache

    cache = salt.cache.factory(opts)
    keydir = os.path.join(opts["pki_dir"], "minions")
    for minion, status in statuses.items():
        with open(os.path.join(keydir, minion), "w", encoding="ascii") as fh:
            fh.write(PUB)
        if status is not None:
            # Where this Salt's master keeps it (the runner's own answer: 3008 moved it).
            bank, key = ("mine", minion) if MINE_BY_ID else (f"minions/{minion}", "mine")
            cache.store(bank, key, {"conntrack.status": status})


def status(count, maximum, drop=0, early_drop=0, recent=None):
    """A ``conntrack.status`` as a minion of this version sends it to the mine."""
    return {
        "flavour": "nf_conntrack",
        "count": count,
        "max": maximum,
        "usage": round(100.0 * count / maximum, 2) if maximum else 0.0,
        "buckets": maximum,
        "hashsize": maximum,
        "initial_netns": True,
        "stats": {
            "entries": count,
            "found": 1234,
            "invalid": 5,
            "insert": 0,
            "insert_failed": 0,
            "drop": drop,
            "early_drop": early_drop,
            "search_restart": 17,
        },
        "recent": recent,
    }


def fleet_statuses(n):
    """``n`` minions of a plausible fleet: most calm, some busy, a few dropping now or long ago."""
    out = {}
    for i in range(n):
        minion = f"minion-{i:05d}"
        if i % 97 == 0:
            out[minion] = status(
                262144,
                262144,
                drop=5000 + i,
                recent={
                    "drop": 40,
                    "early_drop": 3,
                    "insert_failed": 0,
                    "seconds": 300.0,
                    "since": "2026-11-25T11:00:00+00:00",
                },
            )
        elif i % 31 == 0:
            out[minion] = status(
                1000,
                262144,
                drop=12,
                recent={
                    "drop": 0,
                    "early_drop": 0,
                    "insert_failed": 0,
                    "seconds": 300.0,
                    "since": "2026-11-25T11:00:00+00:00",
                },
            )
        elif i % 11 == 0:
            out[minion] = status(210000, 262144)
        else:
            out[minion] = status(1000 + i, 262144)
    return out
