"""conntrack.textfile for real: the formula's textfile.sls schedules it on a
real minion's scheduler, `promtool check metrics` accepts the file, and a real
prometheus-node-exporter (textfile collector, loopback) serves the metrics.

The minion's ``conntrack.root`` is a fixture tree with a table in it, so the
numbers are known and nothing touches the host's /etc or kernel.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest
from saltfactories.utils import random_string

from tests.conftest import LOADER_DIRS
from tests.support.fixtures import TABLE_LINES, build_root

DNS = (
    "udp      17 29 src=10.0.0.{h} dst=10.0.0.53 sport={p} dport=53 [UNREPLIED] "
    "src=10.0.0.53 dst=10.0.0.{h} sport=53 dport={p} mark=0 use=1"
)
PROM = "/var/lib/node-exporter/saltext_conntrack.prom"


def tool(name):
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin")
    if path is None:
        if os.environ.get("CONNTRACK_REQUIRE_KERNEL"):
            pytest.fail(f"{name} is required here (apt-get install prometheus prometheus-node-exporter)")
        pytest.skip(f"{name} is not installed (apt-get install prometheus prometheus-node-exporter)")
    return path


@pytest.fixture(scope="module")
def textfile_minion(master, tmp_path_factory):
    root = tmp_path_factory.mktemp("textfile") / "root"
    table = [DNS.format(h=i % 200 + 1, p=10000 + i) for i in range(600)] + TABLE_LINES
    build_root(root, count=606, maximum=1000, table=table)
    os.makedirs(root / "var/lib/node-exporter")
    factory = master.salt_minion_daemon(
        random_string("textfile-"), overrides={**LOADER_DIRS, "conntrack.root": str(root)}
    )
    with factory.started():
        yield factory, root


def apply(salt_cli, minion_id, textfile):
    pillar = {"conntrack": {"textfile": textfile}}
    ret = salt_cli.run(
        "state.apply", "conntrack.textfile", f"pillar={json.dumps(pillar)}", minion_tgt=minion_id, _timeout=120
    )
    assert isinstance(ret.data, dict), ret
    [state] = ret.data.values()
    assert state["result"] is True, state
    return state


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stamp(path):
    try:
        with open(path, encoding="utf-8") as fh:
            match = re.search(r"^saltext_conntrack_diagnose_timestamp_seconds (\S+)$", fh.read(), re.M)
    except FileNotFoundError:
        return None
    return float(match.group(1)) if match else None


def test_scheduled_textfile_checked_and_served(salt_cli, textfile_minion):
    promtool, exporter = tool("promtool"), tool("prometheus-node-exporter")
    minion, root = textfile_minion
    path = f"{root}{PROM}"
    state = apply(salt_cli, minion.id, {"path": PROM, "interval": 3, "splay": 0})
    assert state["changes"], state
    first = wait_for(lambda: stamp(path), 60, "the scheduled run to write the file")
    # The schedule repeats: a later run rewrites the file with a later timestamp.
    wait_for(lambda: (stamp(path) or 0) > first, 60, "a second scheduled run")
    listed = salt_cli.run("schedule.list", "return_yaml=False", minion_tgt=minion.id).data
    assert listed["conntrack-textfile"]["function"] == "conntrack.textfile", listed

    check = subprocess.run(
        [promtool, "check", "metrics"], stdin=open(path, "rb"), capture_output=True, text=True, timeout=60, check=False
    )
    assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), check

    port = free_port()
    proc = subprocess.Popen(
        [
            exporter,
            f"--web.listen-address=127.0.0.1:{port}",
            "--collector.disable-defaults",
            "--collector.textfile",
            f"--collector.textfile.directory={root}/var/lib/node-exporter",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def scrape():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                    return resp.read().decode()
            except OSError:
                return None

        served = wait_for(scrape, 30, "node_exporter to answer")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert 'saltext_conntrack_finding{id="unreplied_udp_port"} 2' in served
    assert 'saltext_conntrack_top_dport_entries{port="53",protocol="udp"} 601' in served
    assert 'saltext_conntrack_protocol_entries{protocol="udp"} 601' in served
    assert re.search(r"^node_textfile_scrape_error 0$", served, re.M), served[-2000:]
    assert "saltext_conntrack_prom" in served or "node_textfile_mtime_seconds" in served

    off = apply(salt_cli, minion.id, {"enabled": False, "path": PROM})
    assert off["changes"], off
    listed = salt_cli.run("schedule.list", "return_yaml=False", minion_tgt=minion.id).data
    assert "conntrack-textfile" not in (listed or {}), listed
