"""The reactor SLS, rendered as the master renders it: the target comes from
the tag alone, no event value reaches the state, and the state-lock choice
(queue False, not concurrent; see the SLS comment) is explicit."""

import json

import pytest
import salt.config
import salt.utils.templates
import yaml

from tests.conftest import REPO

SLS = REPO / "salt" / "reactor" / "conntrack_remediate.sls"
FORGED = {
    "id": "mallory",
    "max": 1,
    "buckets": 1,
    "queue": True,
    "concurrent": True,
    "mods": "evil",
    "pillar": {"x": 1},
}


def render(tag, data=None, sls=SLS):
    opts = salt.config.minion_config(None)
    text = salt.utils.templates.render_jinja_tmpl(
        sls.read_text(encoding="utf-8"),
        {"tag": tag, "data": data or {}, "opts": opts, "saltenv": "base", "grains": {}, "pillar": {}, "salt": {}},
    )
    return text, yaml.safe_load(text) or {}


def test_reaction_takes_only_the_target_from_the_tag():
    text, high = render("salt/beacon/web-1.example/conntrack/table_full", FORGED)
    assert high == {
        "conntrack_remediate": {
            "local.state.apply": [
                {"tgt": ["web-1.example"]},
                {"tgt_type": "list"},
                {"args": [{"mods": "conntrack.remediate"}, {"queue": False}]},
            ]
        }
    }
    for value in ("mallory", "evil", json.dumps(FORGED["pillar"])):
        assert value not in text


@pytest.mark.parametrize(
    "tag",
    [
        "salt/beacon/*/conntrack/table_full",
        "salt/beacon/web1,db1/conntrack/table_full",
        "salt/beacon/G@os:Debian/conntrack/table_full",
        "salt/beacon/web1/conntrack/usage_ok",
        "salt/beacon/web1/other/table_full",
        "salt/beacon/web1/conntrack/table_full/extra",
    ],
)
def test_anything_but_a_plain_minion_id_renders_nothing(tag):
    assert render(tag, FORGED)[1] == {}


def test_drift_reaction_takes_only_the_target_from_the_tag():
    drift_sls = REPO / "salt" / "reactor" / "conntrack_drift.sls"
    text, high = render("salt/beacon/web-1.example/conntrack/drift", FORGED, drift_sls)
    assert high == {
        "conntrack_reapply": {"local.conntrack_remediate.reapply": [{"tgt": ["web-1.example"]}, {"tgt_type": "list"}]}
    }
    for value in ("mallory", "evil", json.dumps(FORGED["pillar"])):
        assert value not in text
    for tag in (
        "salt/beacon/*/conntrack/drift",
        "salt/beacon/web1/conntrack/table_full",
        "salt/beacon/a,b/conntrack/drift",
    ):
        assert render(tag, FORGED, drift_sls)[1] == {}
