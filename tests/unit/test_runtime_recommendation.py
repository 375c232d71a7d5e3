"""The recommendation: the RAM rule, the kernel's bucket ratio, the comparison with the host."""

import pytest
from salt.exceptions import SaltInvocationError

from saltext_conntrack.runtime import recommendation, snapshot
from tests.support.fixtures import build_root


def host(root, release="6.17.0-1-amd64"):
    return snapshot.Host(str(root), release, 64)


def test_recommend_against_the_host(tmp_path):
    root = build_root(tmp_path, maximum=65536, buckets=8192, mem_kb=64 * 1024 * 1024, slab_size=320)
    st = snapshot.take(host(root), None, 300, 0.0)
    ret = recommendation.recommend(host(root), st)
    assert ret["max"] == 2097152 and ret["hashsize"] == 2097152 and ret["entry_size"] == 320
    assert ret["memory_bytes"] == 2097152 * 320 + 2097152 * 8
    assert ret["needs_change"] is True and ret["current"]["max"] == 65536


def test_recommend_without_a_table(tmp_path):
    build_root(tmp_path, mem_kb=1024 * 1024)
    ret = recommendation.recommend(host(tmp_path), None, ram="2G", arch=32, hash_ratio=8)
    assert (ret["ram"], ret["arch"], ret["max"], ret["hashsize"]) == (2**31, 32, 131072, 16384)
    assert ret["needs_change"] is None and "not loaded" in ret["reasons"][0]


@pytest.mark.parametrize("kwargs,words", [({"arch": 48}, "arch must be 32 or 64"), ({"hash_ratio": 0}, "hash_ratio")])
def test_bad_arguments(tmp_path, kwargs, words):
    build_root(tmp_path)
    with pytest.raises(SaltInvocationError, match=words):
        recommendation.size(host(tmp_path), None, kwargs.get("arch"), kwargs.get("hash_ratio"), "nf_conntrack", None)
