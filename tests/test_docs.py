"""README.md and docs/*.md as a reader of a fresh clone meets them.

The README is the front door: short enough for two screens, and every docs page reachable from
it. Every relative link (file and `#anchor`) resolves inside the repository, and no page names a
file beside the checkout: a clone has none of them, so such a reference is a dead end for every
reader but the one who wrote it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_MAX_LINES = 100
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`[^`]*`")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# A path token starts a word: `$PWD/../x` is a shell expression, not a path relative to the page.
RELATIVE_UP = re.compile(r"(?<![\w$./}-])\.\./[^\s`'\")\]]*")
ABSOLUTE = re.compile(r"(?<![\w$./}:~-])/[\w.-][^\s`'\")\]]*")
PATH_IN_CODE = re.compile(r"[\w.*/-]+")
MODULE_RUN = re.compile(r"python3? -m ([a-z_][\w.]*)")
# Made by the commands, not kept in git: a page may name what lands there.
GENERATED = {".cache", ".pulumi-state", "artifacts", "state"}


def split_lines(text: str) -> tuple[list[str], list[str]]:
    """The page's text lines and its code-block lines (fenced, or indented).

    Indented code is taken as four or more leading spaces, which these pages use for commands
    only (list continuations are indented by three at most).
    """
    prose, code, fenced = [], [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        (code if fenced or line.startswith("    ") else prose).append(line)
    return prose, code


def prose_lines(text: str) -> list[str]:
    return split_lines(text)[0]


def github_anchors(page: Path) -> set[str]:
    """The `#fragment`s GitHub gives the page's headings (lower case, punctuation dropped,
    spaces to hyphens, `-1`, `-2` ... for repeats)."""
    seen: dict[str, int] = {}
    anchors = set()
    for line in prose_lines(page.read_text()):
        match = HEADING.match(line)
        if not match:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(2))
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def relative_links(page: Path) -> list[str]:
    targets = []
    for line in prose_lines(page.read_text()):
        targets += LINK.findall(CODE_SPAN.sub("", line))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def link_problems(page: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for target in relative_links(page):
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.is_relative_to(root):
            problems.append(f"{target}: points outside the repository")
        elif not dest.exists():
            problems.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in github_anchors(dest):
            problems.append(f"{target}: {dest.name} has no heading with that anchor")
    return problems


def outside_paths(page: Path, root: Path = ROOT) -> list[str]:
    """Paths in the page (prose and code) that leave the repository: `../` steps past its root,
    or an absolute path beside the checkout (under the directory that holds it)."""
    text = page.read_text()
    found = []
    for token in RELATIVE_UP.findall(text):
        if not (page.parent / token).resolve().is_relative_to(root):
            found.append(token)
    for token in ABSOLUTE.findall(text):
        if Path(token).is_relative_to(root.parent):
            found.append(token)
    return found


def missing_names(page: Path, root: Path = ROOT) -> list[str]:
    """Repository paths in code (`infra/worker.py`, `container/build/prune_*.py`) and modules
    run with `python -m` that the tree does not have: a file renamed or removed since the page
    was written. Code is a code span in the text or a line of a code block."""
    top_level = {p.name for p in root.iterdir()} - GENERATED
    prose, code = split_lines(page.read_text())
    missing = []
    for span in [s for line in prose for s in CODE_SPAN.findall(line)] + code:
        for token in PATH_IN_CODE.findall(span.strip("`")):
            name = token.rstrip("/.")
            if "/" not in name or name.split("/")[0] not in top_level:
                continue
            if not (any(root.glob(name)) if "*" in name else (root / name).exists()):
                missing.append(token)
        for module in MODULE_RUN.findall(span):
            if module in ("pytest", "pip", "venv"):
                continue
            rel = Path(*module.split("."))
            # The runtime is its own package under container/ (on the venv's path).
            bases = [root, root / "container"]
            if not any((b / rel).is_dir() or (b / rel).with_suffix(".py").is_file() for b in bases):
                missing.append(f"python -m {module}")
    return missing


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_paths_and_modules_exist(page: Path) -> None:
    assert missing_names(page) == [], "rename these in the page, or say what replaced them"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    assert link_problems(page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_path_outside_the_repository(page: Path) -> None:
    found = outside_paths(page)
    assert found == [], f"describe these without their path (a clone does not have them): {found}"


def test_readme_fits_two_screens() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move detail to a docs/ page "
        "and link it from the layout table"
    )


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in relative_links(README)}
    unlinked = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert unlinked == [], f"link these from README.md's layout table: {unlinked}"


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """The checks above pass on the real pages only if they can fail: a page with each fault."""
    (tmp_path / "docs").mkdir()
    (tmp_path / ".cache").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n\n## A heading (`with code`)\n\n"
        "[ok](#a-heading-with-code) [gone](missing.md) [anchor](#nowhere) [up](../../x.md)\n"
        f"See `{tmp_path.parent}/sibling/NOTES.md` and `../../sibling/x`, not `$PWD/../y`.\n\n"
        "    [in code](not-a-link.md)\n"
        "Run `python -m gone.module`, edit `docs/page.md` and `docs/old.py`, `.cache/x/y`.\n\n"
        "    .cache/venv/bin/python -m also.gone --stack dev\n"
    )
    assert link_problems(page, root=tmp_path) == [
        "missing.md: no such file",
        "#nowhere: page.md has no heading with that anchor",
        "../../x.md: points outside the repository",
    ]
    assert outside_paths(page, root=tmp_path) == [
        "../../x.md",
        "../../sibling/x",
        f"{tmp_path.parent}/sibling/NOTES.md",
    ]
    assert missing_names(page, root=tmp_path) == [
        "python -m gone.module",
        "docs/old.py",
        "python -m also.gone",
    ]
