"""The persistence plans' validation (``persistence.plans``): module names, allowed paths.

Moved from tests/unit/test_files_validation.py.
"""

import pytest
from salt.exceptions import SaltInvocationError

from saltext_conntrack.persistence import plans


def test_module_names_accepted():
    assert plans.modules(["nf_conntrack", "nf-nat", "9p"]) == ["nf_conntrack", "nf-nat", "9p"]
    with pytest.raises(SaltInvocationError):
        plans.modules("x" * 65)


@pytest.mark.parametrize(
    "path, ok",
    [
        ("/etc/sysctl.d/90-conntrack.conf", True),
        ("/etc/sysctl.conf", True),
        ("/etc/sysctl.d/.hidden.conf", False),
        ("/etc/sysctl.d/" + "x" * 250 + ".conf", False),
        ("/etc/sysctl.d/a b.conf", False),
        ("etc/sysctl.conf", False),
        ("/etc/sysctl.d/x.conf\n", False),
    ],
)
def test_allowed_paths(path, ok):
    if ok:
        assert plans.allowed(path, "sysctl") == path
    else:
        with pytest.raises(SaltInvocationError):
            plans.allowed(path, "sysctl")


def test_a_plan_has_the_file_plan_keys_and_nothing_to_do_when_equal():
    same = plans.plan("/etc/x.conf", "/r/etc/x.conf", "a\n", "a\n", True, {"x": 1})
    assert set(same) == set(plans.FilePlan.__annotations__)
    assert same["changes"] == {} and not plans.pending(same)
    gone = plans.plan("/etc/x.conf", "/r/etc/x.conf", "a\n", None, True, {"removed": True})
    assert plans.pending(gone) and gone["changes"] == {"removed": True}
