"""tests/support/loaders.py: two TreeLoaders alive at once stay apart."""

TEMPLATE = "osfinger: {{ grains['osfinger'] }}"


def _rendered_osfinger(loaders):
    return loaders.modules.slsutil.renderer(string=TEMPLATE, default_renderer="jinja|yaml")["osfinger"]


def test_two_instances_render_with_their_own_grains(make_loaders):
    """A Salt loader re-executes a module object left in sys.modules under its
    own dunders (3006, 3007 and 3008 alike): without TreeLoaders' start-up
    clean-up, the first instance renders with the second one's grains."""
    first = make_loaders("/")
    first.grains.update({"osfinger": "Rocky Linux-9"})
    assert _rendered_osfinger(first) == "Rocky Linux-9"
    second = make_loaders("/")
    second.grains.update({"osfinger": "CentOS-5"})
    assert _rendered_osfinger(second) == "CentOS-5"
    assert _rendered_osfinger(first) == "Rocky Linux-9"
