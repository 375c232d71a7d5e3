"""Run every benchmark in bench/ (root, real kernel: network namespaces, and
global sysctls raised for the run and restored after).

make bench                          # all of them, full size; a missed target fails
make bench BENCH_MODE=short         # all of them, small and once; figures only (CI)
.venv-3008/bin/python bench/run.py bench_table   # one
BENCH_MODE=short .venv-3008/bin/python bench/run.py

``BENCH_MODE`` (environment) is ``full`` (the default) or ``short``; what each
mode does is in bench/timing.py and each benchmark's docstring. Either way a
benchmark that raises fails the run; the full mode also fails it when a figure
misses its target. Exits 1 when any benchmark failed, after running them all.
"""

import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.timing import MODE


def main(names):
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        unknown = set(names) - {s.stem for s in scripts}
        if unknown:
            raise SystemExit(f"no such benchmark: {', '.join(sorted(unknown))}")
        scripts = [s for s in scripts if s.stem in names]
    failed = []
    start = time.perf_counter()
    for script in scripts:
        print(f"== {script.stem} ({MODE})", flush=True)
        began = time.perf_counter()
        code = subprocess.run([sys.executable, str(script)], cwd=HERE.parent, check=False).returncode
        print(f"== {script.stem}: {'ok' if code == 0 else f'FAILED ({code})'} in {time.perf_counter() - began:.1f} s")
        if code:
            failed.append(script.stem)
    print(f"== {len(scripts)} benchmarks ({MODE}) in {time.perf_counter() - start:.1f} s", end="")
    print(f", failed: {', '.join(failed)}" if failed else ", all passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
