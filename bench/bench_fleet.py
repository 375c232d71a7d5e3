"""The fleet report at scale: ``salt-run conntrack.fleet`` beside ``salt-run mine.get``.

Builds a synthetic Salt master of 10,000 minions in a temporary directory:
an accepted key per minion (``pki_dir/minions/<id>``) and each minion's mine
stored through Salt's own cache API (bank ``mine``, key the minion id,
``{"conntrack.status": status}``), as the master stores a minion's
``mine.update``. No daemon runs: both runners read the cache as on a live
master. Then times, each as a fresh ``salt-run`` process (median of a few
runs, output written to /dev/null):

- ``salt-run test.arg``: salt-run's start-up, the floor;
- ``salt-run mine.get '*' conntrack.status``: Salt's own read of the same data;
- ``salt-run conntrack.fleet``: the report (every row judged and sorted).

and prints wall and CPU time of each, their cost net of start-up, and the
ratio fleet / mine.get (target: at most 1.15). Both with ``--out=json`` (what
a script reads) and ``--out=quiet`` (the work alone, no printing).

In short mode (``BENCH_MODE=short``, see bench/timing.py): 500 minions, one
run per command, ``--out=json`` only (each salt-run starts in seconds).

    .venv/bin/python bench/bench_fleet.py            # 10,000 minions
    .venv/bin/python bench/bench_fleet.py 2000 3     # minions, runs per command
"""

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "_utils"))

from bench.timing import size, target, verdict
from tests.support.mastercache import fleet_statuses, master_dir, populate

SALT_RUN = os.path.join(os.path.dirname(sys.executable), "salt-run")
MINIONS = size(10_000, 500)
RUNS = size(5, 1)


def timed(confdir, args, env):
    """(wall seconds, CPU seconds) of one salt-run process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [SALT_RUN, "-c", confdir, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"salt-run {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(confdir, commands, env, runs):
    """Median wall and CPU per command; runs interleaved so load drifts hit all alike."""
    samples = {name: [] for name in commands}
    for _ in range(runs):
        for name, args in commands.items():
            samples[name].append(timed(confdir, args, env))
    return {
        name: (statistics.median(w for w, _ in got), statistics.median(c for _, c in got))
        for name, got in samples.items()
    }


def report(title, got):
    start_wall, start_cpu = got["start-up"]
    print(f"  {title}")
    print(f"    {'':34} {'wall s':>8} {'cpu s':>8} {'net wall':>9} {'net cpu':>8}")
    for name, (wall, cpu) in got.items():
        print(f"    {name:34} {wall:8.2f} {cpu:8.2f} {wall - start_wall:9.2f} {cpu - start_cpu:8.2f}")
    mine_wall, mine_cpu = got["mine.get '*' conntrack.status"]
    fleet_wall, fleet_cpu = got["conntrack.fleet"]
    ratio_wall = (fleet_wall - start_wall) / max(mine_wall - start_wall, 1e-9)
    ratio_cpu = (fleet_cpu - start_cpu) / max(mine_cpu - start_cpu, 1e-9)
    print(
        f"    fleet / mine.get net of start-up: wall {ratio_wall:.2f}x, cpu {ratio_cpu:.2f}x "
        f"{target(ratio_wall, 1.15, f'{title}: fleet / mine.get wall <= 1.15x')}"
    )


def main(minions=MINIONS, runs=RUNS):
    work = tempfile.mkdtemp(prefix="bench-fleet-")
    try:
        start = time.perf_counter()
        opts = master_dir(work)
        populate(opts, fleet_statuses(minions))
        print(
            f"  synthetic master: {minions} minions (keys + mine) in {time.perf_counter() - start:.1f} s under {work}"
        )
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([os.path.join(REPO, "_utils"), os.environ.get("PYTHONPATH", "")]),
        }
        for out in size(("json", "quiet"), ("json",)):
            commands = {
                "start-up": ["test.arg", f"--out={out}"],
                "mine.get '*' conntrack.status": ["mine.get", "*", "conntrack.status", f"--out={out}"],
                "conntrack.fleet": ["conntrack.fleet", f"--out={out}"],
            }
            report(f"--out={out}, median of {runs} runs", measure(work, commands, env, runs))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return verdict()


if __name__ == "__main__":
    sys.exit(main(*(int(arg) for arg in sys.argv[1:3])))
