"""Run every benchmark in bench/ (root, real kernel; not part of CI).

make bench                 # all of them
.venv/bin/python bench/run.py bench_table   # one
"""

import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent


def main(names):
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem in names]
    failed = 0
    for script in scripts:
        print(f"== {script.stem}", flush=True)
        failed |= subprocess.run([sys.executable, str(script)], cwd=HERE.parent, check=False).returncode
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
