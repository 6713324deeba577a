"""The documentation's promises: every relative link resolves inside the repository, and no text of the README
stands a second time in docs/ (each text lives in one place)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted([REPO / "README.md", REPO / "config" / "README.md", *(REPO / "docs").glob("*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _relative_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)  # code blocks hold no links
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z]+:", t) and not t.startswith("#")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve_inside_the_repository(doc: Path) -> None:
    for target in _relative_links(doc):
        resolved = (doc.parent / target.split("#", 1)[0]).resolve()
        assert resolved.is_relative_to(REPO), f"{doc.name}: {target} points outside the repository"
        assert resolved.exists(), f"{doc.name}: {target} does not exist"


def _paragraphs(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    blocks = (" ".join(b.split()) for b in re.split(r"\n\s*\n", text))
    # long prose only: headings, short lines and table rows may repeat by design
    return {b for b in blocks if len(b) >= 160 and not b.startswith(("|", "#", "```"))}


def test_no_readme_paragraph_stands_again_in_docs() -> None:
    readme = _paragraphs(REPO / "README.md")
    for doc in (REPO / "docs").glob("*.md"):
        repeated = readme & _paragraphs(doc)
        assert not repeated, f"{doc.name} repeats README text: {next(iter(repeated))[:120]}..."


def test_readme_is_a_front_door() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 330
    commands = re.findall(r"^make (\w+)", readme, flags=re.M)
    assert commands[:2] == ["demo", "test"]
