"""The release inputs: changelog fragments towncrier can build, one version source."""

import re

from tests.conftest import REPO


def _fragment_types():
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    section = text[text.index("[tool.towncrier]") :]
    return set(re.findall(r'^directory = "(\w+)"$', section, re.M)) - {"changes"}


def test_every_fragment_is_named_for_an_issue_and_a_known_type():
    types = _fragment_types()
    assert {"added", "changed", "fixed"} <= types, types
    fragments = sorted(p for p in (REPO / "changes").iterdir() if p.name != ".gitignore")
    assert fragments, "changes/ holds the fragments of the next release"
    for path in fragments:
        found = re.fullmatch(r"(\d+)\.(\w+)(\.\d+)?\.md", path.name)
        assert found and found.group(2) in types, f"{path.name}: not <issue>.<{'|'.join(sorted(types))}>.md"
        assert path.read_text(encoding="utf-8").strip(), f"{path.name} is empty"


def test_the_version_is_not_written_in_the_tree():
    """setuptools_scm reads the git tag; a hand-kept version would disagree with it one day."""
    assert "version =" not in (REPO / "setup.cfg").read_text(encoding="utf-8").split("[options]")[0]
    init = (REPO / "_utils" / "saltext_conntrack" / "__init__.py").read_text(encoding="utf-8")
    assert re.search(r'^__version__ = "\d', init, re.M) is None
    assert "_utils/saltext_conntrack/_version.py" in (REPO / ".gitignore").read_text(encoding="utf-8")
