"""The docs site (``make docs``): it builds with no warnings, every internal
link lands on a page and an anchor that exist, every loader file has its
reference page, and the site's own search, run in a real headless Chromium,
finds a function's reference page.

Chromium is Debian's ``chromium`` (scripts/system-deps installs it); without
it the browser test skips with the reason, and under CI
(``CONNTRACK_REQUIRE_KERNEL=1``) that skip is a failure.
"""

import html.parser
import os
import shutil
import subprocess
import sys
import urllib.parse

import pytest

from tests.conftest import REPO

DOCS = REPO / "docs"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html", str(DOCS), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"sphinx-build failed or warned:\n{proc.stdout}\n{proc.stderr}"
    assert not proc.stderr.strip(), proc.stderr
    return out


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key):
                self.links.append(attrs[key])


def _parse(page):
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_every_internal_link_lands(site):
    pages = {page: _parse(page) for page in site.rglob("*.html")}
    broken = []
    for page, parsed in pages.items():
        for link in parsed.links:
            url = urllib.parse.urlsplit(link)
            if url.scheme or url.netloc or link.startswith("mailto:"):
                continue
            target = (page.parent / urllib.parse.unquote(url.path)).resolve() if url.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: {link}")
            elif url.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if urllib.parse.unquote(url.fragment) not in ids:
                    broken.append(f"{page.relative_to(site)}: {link} (no such anchor)")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("kind", ["modules", "states", "beacons", "runners"])
def test_every_loader_file_has_its_reference_page(site, kind):
    for path in sorted((REPO / f"_{kind}").glob("*.py")):
        name = f"saltext_conntrack.{kind}.{path.stem}"
        page = site / "ref" / kind / f"{name}.html"
        assert page.is_file(), f"{path.relative_to(REPO)} has no reference page (docs/ref/{kind}/{name}.rst)"
        ids = _parse(page).ids
        public = [line.split("(")[0][4:] for line in path.read_text().splitlines() if line.startswith("def ")]
        public = [fun for fun in public if not fun.startswith("_")]
        missing = [fun for fun in public if f"{name}.{fun}" not in ids]
        assert not missing, f"{page.name} documents none of {missing}"


def _chromium():
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        reason = "Debian's chromium is not installed (scripts/system-deps installs it)"
        if os.environ.get("CONNTRACK_REQUIRE_KERNEL"):
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    return found


@pytest.mark.parametrize(
    "query,page",
    [
        ("set_max", "ref/modules/saltext_conntrack.modules.conntrack.html#saltext_conntrack.modules.conntrack.set_max"),
        (
            "blacklisted",
            "ref/states/saltext_conntrack.states.conntrack.html#saltext_conntrack.states.conntrack.blacklisted",
        ),
    ],
)
def test_search_in_a_real_browser_finds_the_reference_page(site, tmp_path, query, page):
    """The search page runs its JavaScript over searchindex.js, as a reader's
    browser does; the results list links to the function's own anchor."""
    url = (site / "search.html").as_uri() + f"?q={query}"
    proc = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = [link for link in _parse_text(proc.stdout).links if "ref/" in link]
    assert page in results, f"search for {query!r} gave {results[:10]}"


def _parse_text(text):
    parser = _Links()
    parser.feed(text)
    return parser
