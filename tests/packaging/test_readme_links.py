"""README.md is also the project's page on the package index (it is the long description),
where a relative link leads nowhere: every link in it is an absolute URL or an anchor."""

from __future__ import annotations

import re

from tests.packaging.conftest import ROOT

LINK = re.compile(r"\]\(([^)\s]+)\)|<a\s[^>]*href=\"([^\"]+)\"|^\[[^\]]+\]:\s*(\S+)", re.M)


def test_readme_links_are_absolute_or_anchors() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = [next(filter(None, m.groups())) for m in LINK.finditer(text)]
    assert targets, "the README links to mongoose at least"
    relative = [t for t in targets if not re.match(r"https?://|#|mailto:", t)]
    assert relative == [], f"relative links break on a package index page: {relative}"


def test_readme_names_the_distribution_to_install() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install mgpy-net" in text
    assert re.search(r"^name = \"mgpy-net\"$", (ROOT / "pyproject.toml").read_text(), re.M)
