"""``python -m saltext_conntrack`` (or ``saltext-conntrack-paths``): where the
installed formula, reactor and loader directories are, for file_roots and
reactor configs pointing at an installed copy."""

import argparse
import json
import os
import sys

from saltext_conntrack import __version__, formula_root, loader_dirs


def paths():
    root = formula_root()
    return {
        "version": __version__,
        "file_root": root,
        "formula": os.path.join(root, "conntrack") if root else None,
        "pillar_example": os.path.join(root, "conntrack", "pillar.example") if root else None,
        "reactor": os.path.join(root, "reactor") if root else None,
        "loader_dirs": loader_dirs(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="saltext-conntrack-paths", description=__doc__)
    parser.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=("all", "file-root", "formula-path", "pillar-example", "reactor-path", "version"),
        help="one path to print (default: all of them, as JSON)",
    )
    args = parser.parse_args(argv)
    found = paths()
    if found["file_root"] is None:
        print("saltext-conntrack: the formula is not installed beside the package", file=sys.stderr)
        return 1
    keys = {
        "file-root": "file_root",
        "formula-path": "formula",
        "pillar-example": "pillar_example",
        "reactor-path": "reactor",
        "version": "version",
    }
    print(json.dumps(found, indent=2) if args.what == "all" else found[keys[args.what]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
