import os
import pathlib
import sys

import pytest
from saltfactories.utils import random_string

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# The core, as the sync route ships it (_utils), ahead of a pip-installed copy.
sys.path.insert(0, str(REPO / "_utils"))
# ... and for the daemons and salt-call children the tests start.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(REPO / "_utils"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
)

# The working tree's loader directories, ahead of any pip-installed copy.
LOADER_DIRS = {
    "module_dirs": [str(REPO / "_modules")],
    "states_dirs": [str(REPO / "_states")],
    "beacons_dirs": [str(REPO / "_beacons")],
    "runner_dirs": [str(REPO / "_runners")],
    "utils_dirs": [str(REPO / "_utils")],
}


@pytest.fixture(scope="session")
def salt_factories_config():
    return {
        "code_dir": str(REPO),
        "inject_sitecustomize": False,
        "start_timeout": 120 if os.environ.get("CI") else 60,
    }


@pytest.fixture(scope="session")
def minion_opts(salt_factories):
    factory = salt_factories.salt_minion_daemon(
        random_string("functional-"),
        overrides={"file_client": "local", "conntrack.root": "/", **LOADER_DIRS},
    )
    return factory.config.copy()


@pytest.fixture
def make_loaders(minion_opts):
    """Loaders whose ``conntrack.root`` is the given fixture tree: ``.modules``, ``.states``, ...
    and ``.beacons`` (built on first use); ``.restart()`` is a beacon's minion killed."""
    from tests.support.loaders import TreeLoaders

    made = []

    def make(root="/", **opts):
        loaders = TreeLoaders({**minion_opts, "conntrack.root": str(root), **opts})
        made.append(loaders)
        return loaders

    yield make
    for loaders in made:
        loaders.restart()
        loaders.reset_state()


@pytest.fixture
def loaders(make_loaders):
    return make_loaders("/")


@pytest.fixture
def modules(loaders):
    return loaders.modules


def pytest_unconfigure(config):
    # Salt's temporary log handler buffers records and flushes them at exit
    # into the stderr pytest captured, which is closed by then.
    from salt._logging import impl

    handler = getattr(impl.setup_temp_handler, "__handler__", None)
    if handler is not None:
        handler.stream = open(os.devnull, "w", encoding="utf-8")


def pytest_sessionfinish(session, exitstatus):
    """With CONNTRACK_CI_RECORD set, write what ran where (.ci/run checks every leg ran)."""
    record = os.environ.get("CONNTRACK_CI_RECORD")
    if not record:
        return
    import json

    import salt.version

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = reporter.stats if reporter else {}
    counts = {key: len(stats.get(key, [])) for key in ("passed", "failed", "error", "skipped")}
    with open(record, "w", encoding="utf-8") as fh:
        json.dump(
            {
                "python": ".".join(map(str, sys.version_info[:3])),
                "salt": salt.version.__version__,
                "exitstatus": int(exitstatus),
                "paths": [str(arg) for arg in session.config.args],
                **counts,
            },
            fh,
        )


def wait_for_log_event(master, event_listener, tag, log, line, timeout=60):
    """Append ``line`` to the beacon's ``log`` until ``tag`` reaches ``master``'s
    bus: the beacon starts at the end of the file on its first run, so a line
    written before that run is never seen. Returns the matching events."""
    import time

    start = time.time()
    deadline = time.monotonic() + timeout
    matched = []
    while time.monotonic() < deadline and not matched:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(line)
        matched = event_listener.wait_for_events([(master.id, tag)], timeout=2, after_time=start).matches
    return matched


@pytest.fixture(scope="session")
def file_roots(tmp_path_factory):
    """``file_roots`` serving this tree as a master would (salt://conntrack,
    salt://reactor, and _modules, _states, _beacons, _runners, _utils for
    sync_all), through links in a directory of their own: the repository
    root itself holds the venvs (.venv-*, tens of thousands of files) that
    Salt's roots fileserver would walk on every file listing."""
    root = tmp_path_factory.mktemp("file_root")
    for name in ("_modules", "_states", "_beacons", "_runners", "_utils"):
        (root / name).symlink_to(REPO / name)
    for name in ("conntrack", "reactor"):
        (root / name).symlink_to(REPO / "salt" / name)
    (root / "tests").symlink_to(REPO / "tests")  # salt://tests/integration/files/...: the tests' own SLS
    return {"base": [str(root)]}
