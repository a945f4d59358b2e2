"""Every relative link in the README and docs/ resolves to a file this repository tracks.

Why: the README once sent precincts to a DESIGN.md that was never in the repository, so the
contract they must implement could not be read. A link to a file, a folder or a heading
(``file.md#anchor``, GitHub's slugs) that a clean clone lacks fails here.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted([REPO / "README.md", REPO / "deploy" / "ansible" / "README.md", *(REPO / "docs").glob("*.md")])
_LINK = re.compile(r"\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


@cache
def _tracked() -> frozenset[str]:
    """Files git tracks (what a clean clone has); without git, whatever is on disk."""
    try:
        out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True,
                             timeout=30).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        return frozenset(str(p.relative_to(REPO)) for p in REPO.rglob("*") if p.is_file())
    return frozenset(path for path in out.split("\0") if path)


def _prose(text: str) -> str:
    """The text without fenced code blocks."""
    return _FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(h) for h in _HEADING.findall(_prose(path.read_text(encoding="utf-8")))}


def links(path: Path) -> list[str]:
    """Link targets in prose; code spans go first (a link written inside one is an example), which
    leaves ``[`config/x`](config/x)`` as ``[](config/x)``, still a link."""
    text = _INLINE_CODE.sub("", _prose(path.read_text(encoding="utf-8")))
    return [m.group(1) for m in _LINK.finditer(text)]


def _problem(source: Path, target: str) -> str | None:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ... : not ours to resolve
        return None
    file_part, _, anchor = target.partition("#")
    dest = (source.parent / file_part).resolve() if file_part else source
    try:
        rel = str(dest.relative_to(REPO))
    except ValueError:
        return f"{target}: points outside the repository"
    tracked = _tracked()
    if rel not in tracked and not any(path.startswith(rel + "/") for path in tracked):
        return f"{target}: {rel} is not a file or folder of the repository"
    if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
        return f"{target}: no heading #{anchor} in {rel}"
    return None


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves_inside_the_repository(doc: Path) -> None:
    found = links(doc)
    if doc == REPO / "README.md":
        assert found, "no links found in the README: is the link pattern still right?"
    problems = [p for target in found if (p := _problem(doc, target))]
    assert problems == []


def test_no_file_points_at_documents_outside_the_repository() -> None:
    """DESIGN.md and RIG.md were notes kept outside the repository; nothing may send a reader there."""
    outside = re.compile(r"\b(DESIGN|RIG)\.md\b|\.\./shared/")
    offenders = []
    for rel in sorted(_tracked()):
        path = REPO / rel
        if path == Path(__file__) or path.suffix not in {".md", ".py", ".toml", ".yml", ".cfg", ".sh", ""}:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        offenders += [f"{rel}:{n}" for n, line in enumerate(text.splitlines(), 1) if outside.search(line)]
    assert offenders == []


def test_the_checker_catches_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    assert slug("Troubleshooting (symptom → command → fix)") == "troubleshooting-symptom--command--fix"
    assert slug("The CLI: `safehouse`") == "the-cli-safehouse"
    assert _problem(REPO / "README.md", "DESIGN.md") is not None
    assert _problem(REPO / "README.md", "docs/mqtt.md#no-such-heading") is not None
    assert _problem(REPO / "README.md", "docs/mqtt.md#acl") is None
    assert _problem(REPO / "README.md", "../outside.md") is not None
    assert _problem(REPO / "README.md", "https://example.org/x") is None
