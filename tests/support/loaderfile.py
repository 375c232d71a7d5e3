"""Import loader files directly: for unit tests of their pure helpers, and for
the benchmarks, which call the execution modules in-process without a Salt
loader."""

import importlib.util
import inspect

from tests.conftest import REPO


def load(relpath, name=None):
    path = REPO / relpath
    spec = importlib.util.spec_from_file_location(name or f"unit_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def execution_modules(opts, grains, prefix="direct"):
    """Every ``_modules/*.py``, keyed by its virtual name, sharing one ``__salt__``.

    The ``__salt__`` holds each module's public functions as
    ``<virtualname>.<function>``, as a loader would, so that a function that
    calls another module's (``conntrack.dependents`` calls
    ``conntrack_fw.dependents``) finds it, whichever module it is in.
    ``__virtual__`` is not asked: the callers run on Linux.
    """
    salt = {}
    modules = {}
    for path in sorted((REPO / "_modules").glob("*.py")):
        module = load(path.relative_to(REPO), name=f"{prefix}_modules_{path.stem}")
        module.__opts__, module.__grains__, module.__salt__ = opts, grains, salt
        virtualname = getattr(module, "__virtualname__", path.stem)
        modules[virtualname] = module
        for fname, fn in vars(module).items():
            if not fname.startswith("_") and inspect.isfunction(fn) and fn.__module__ == module.__name__:
                salt[f"{virtualname}.{fname}"] = fn
    return modules
