"""Import a loader file directly, for unit tests of its pure helpers."""

import importlib.util

from tests.conftest import REPO


def load(relpath, name=None):
    path = REPO / relpath
    spec = importlib.util.spec_from_file_location(name or f"unit_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
