"""The course website (`./course.sh site`): every page is built, every internal link and picture resolves."""
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import build_site  # noqa: E402


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.images = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build_site.build(tmp_path_factory.mktemp("site") / "site")


def parse(path):
    p = Links()
    p.feed(path.read_text())
    return p


def test_every_notebook_has_a_page_linked_from_the_contents(site):
    index = parse(site / "index.html")
    for nb in build_site.notebooks():
        assert (site / "notebooks" / f"{nb.stem}.html").is_file()
        assert f"notebooks/{nb.stem}.html" in index.links
    assert "teachers.html" in index.links
    assert [src for src in index.images if src.startswith("figures/")]  # the README's gallery


def test_internal_links_and_pictures_resolve(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) == len(build_site.notebooks()) + 2
    for page in pages:
        found = parse(page)
        for url in found.links + found.images:
            parsed = urlparse(url)
            if parsed.scheme or url.startswith(("#", "data:")):
                continue
            target = (page.parent / parsed.path).resolve()
            assert target.is_file(), f"{page.relative_to(site)} links to missing {url}"


def test_notebook_pages_carry_their_pictures(site):
    for nb in build_site.notebooks():
        found = parse(site / "notebooks" / f"{nb.stem}.html")
        assert sum(src.startswith("data:image/png") for src in found.images) >= 3, nb.name
