"""Namespace discovery and container attribution on fixture trees (pids, cgroups, bind mounts)."""

import os

from saltext_conntrack.runtime import namespaces

DOCKER_ID = "a" * 64
K8S_ID = "b" * 64


def _proc(root, pid, inode, comm, cgroup):
    base = root / "proc" / str(pid)
    (base / "ns").mkdir(parents=True)
    os.symlink(f"net:[{inode}]", base / "ns" / "net")
    (base / "comm").write_text(f"{comm}\n")
    (base / "cgroup").write_text(cgroup)


def test_owner_from_cgroup_for_each_runtime(tmp_path):
    cases = {
        101: (f"0::/system.slice/docker-{DOCKER_ID}.scope\n", "docker", DOCKER_ID),
        102: (
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice/"
            f"cri-containerd-{K8S_ID}.scope\n",
            "kubernetes",
            K8S_ID,
        ),
        103: (f"0::/machine.slice/libpod-{DOCKER_ID}.scope/container\n", "podman", DOCKER_ID),
        104: ("0::/lxc.payload.web1/init.scope\n", "lxc", "web1"),
        105: ("0::/user.slice/user-0.slice/session-1.scope\n", None, None),
    }
    for pid, (cgroup, _, _) in cases.items():
        _proc(tmp_path, pid, 4026532000 + pid, f"proc{pid}", cgroup)
    for pid, (_, runtime, container) in cases.items():
        owner = namespaces.owner_of(str(tmp_path), pid)
        assert (owner["runtime"], owner["container"], owner["process"]) == (runtime, container, f"proc{pid}")


def test_discover_one_entry_per_inode_with_names_and_lowest_pid(tmp_path):
    _proc(tmp_path, 2, 4026531833, "kthreadd", "0::/\n")
    _proc(tmp_path, 300, 4026532500, "nginx", f"0::/system.slice/docker-{DOCKER_ID}.scope\n")
    _proc(tmp_path, 200, 4026532500, "sh", f"0::/system.slice/docker-{DOCKER_ID}.scope\n")
    # A bind mount is a file whose inode is the namespace's; a fixture file stands in.
    (tmp_path / "run" / "netns").mkdir(parents=True)
    (tmp_path / "run" / "netns" / "blue").write_text("")
    blue = os.stat(tmp_path / "run" / "netns" / "blue").st_ino
    found = namespaces.discover(str(tmp_path))
    assert set(found) == {4026531833, 4026532500, blue}
    assert found[4026531833]["initial"] is True
    assert found[4026532500]["pid"] == 200
    assert found[blue]["names"] == ["/run/netns/blue"] and found[blue]["pid"] is None


def test_counters_from_the_process_stat_file(tmp_path):
    from tests.support.fixtures import stat_text

    _proc(tmp_path, 200, 4026532500, "sh", "0::/\n")
    stat = tmp_path / "proc" / "200" / "net" / "stat"
    stat.mkdir(parents=True)
    (stat / "nf_conntrack").write_text(stat_text("6.17", entries=42, drop=7))
    rows = namespaces.survey(str(tmp_path), "nf_conntrack", 100)
    assert [(r["inode"], r["count"], r["usage"], r["drop"], r["error"]) for r in rows] == [
        (4026532500, 42, 42.0, 7, None)
    ]


def test_survey_reuses_the_owners_it_is_given_and_hands_out_copies(tmp_path, monkeypatch):
    _proc(tmp_path, 200, 4026532500, "sh", f"0::/system.slice/docker-{DOCKER_ID}.scope\n")
    looked = []
    real = namespaces.owner_of
    monkeypatch.setattr(namespaces, "owner_of", lambda root, pid: looked.append(pid) or real(root, pid))
    owners = {}
    first = namespaces.survey(str(tmp_path), "nf_conntrack", 100, owners=owners)
    first[0]["owner"]["process"] = "changed by a caller"
    second = namespaces.survey(str(tmp_path), "nf_conntrack", 100, owners=owners)
    assert looked == [200] and second[0]["owner"]["runtime"] == "docker" and second[0]["owner"]["process"] == "sh"
    namespaces.survey(str(tmp_path), "nf_conntrack", 100)  # no dict given: looked up again
    assert looked == [200, 200]
