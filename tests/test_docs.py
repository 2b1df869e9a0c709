"""The docs point only at files that exist in this repository.

A newcomer follows links and paths from README.md and docs/; a link to a folder outside the
checkout (a team's private notes, a path on one machine) or to a file that moved works on
one machine and nowhere else. These tests read the markdown pages for links and for
backticked repository paths, and every tracked text file for paths outside the repo and
for project docs named without their docs/ folder.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The pages a reader is sent to. bench/ records its results as markdown beside the code.
PAGES = ("README.md", "docs/*.md", "client/README.md", "docker/README.md", "bench/**/*.md")

#: Top-level folders whose paths the docs name in backticks (`src/...`, `tests/...`).
REPO_DIRS = ("src", "tests", "docs", "scripts", "bench", "docker", "client")

#: The project's own docs: code and config cite them as docs/NAME.md.
PROJECT_DOCS = ("DESIGN", "REPORT_CONTRACT", "ADDING_AN_ANALYZER", "STYLE")

# Built from parts so this file does not match its own check.
OUTSIDE = (re.compile(r"\.\./" + "shared"), re.compile(r"(?<![\w.])/" + r"work/"))

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
FENCE = re.compile(r"^(\s*)(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
REPO_PATH = re.compile(r"(?:^|(?<=[\s(=\"']))((?:" + "|".join(REPO_DIRS) + r")/[^\s`'\"()]*)")
#: A backticked file path without a top-level folder (`orchestrator/probe.py`, `k8s/triton.yaml`):
#: it must exist from the repo root, the page's folder or the package's folder.
SHORT_PATH = re.compile(r"^[\w.-]+(?:/[\w.-]+)+\.(?:py|sh|md|toml|pbtxt|json|yaml|yml|proto|txt)$")
PACKAGE = ROOT / "src" / "tiktok_analyzer"
#: `configs/gpu.pbtxt`, `1/model.py`: a path inside each model's folder.
MODELS = PACKAGE / "serving" / "model_repository"
PLACEHOLDER = re.compile(r"[<*{$\[]")
DOC_MENTION = re.compile(r"([\w./-]*?)\b(" + "|".join(PROJECT_DOCS) + r")\.md\b")


@cache
def tracked() -> tuple[str, ...]:
    """The repository's files as git knows them (generated and ignored files left out)."""
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return tuple(p for p in out.split("\0") if p)


def pages() -> list[Path]:
    found: set[Path] = set()
    for pattern in PAGES:
        found.update(p for p in ROOT.glob(pattern) if p.is_file())
    return sorted(found)


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def split_code(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(prose lines, fenced code lines), each as (line number, text)."""
    prose, code = [], []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if match:
            if fence is None:
                fence = match.group(2)
            elif match.group(2) == fence:
                fence = None
            continue
        (code if fence else prose).append((number, line))
    return prose, code


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    prose, _ = split_code(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose:
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return frozenset(out)


def link_problem(page: Path, target: str) -> str | None:
    """Why ``target``, a link on ``page``, is broken; None when it is fine."""
    if re.match(r"^(https?|mailto):", target):
        return None
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
        return f"link {target!r}: only web links or paths inside the repo"
    path_part, _, anchor = target.partition("#")
    if path_part.startswith("/"):
        return f"link {target!r}: absolute paths leave the repo"
    resolved = (page.parent / path_part).resolve() if path_part else page
    try:
        resolved.relative_to(ROOT)
    except ValueError:
        return f"link {target!r} leaves the repo"
    if not resolved.exists():
        return f"link {target!r}: {resolved.relative_to(ROOT)} does not exist"
    if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
        return f"link {target!r}: no heading #{anchor} in {resolved.relative_to(ROOT)}"
    return None


def path_problem(mention: str) -> str | None:
    """Why ``mention``, a repository path named in a page, is broken; None when it is fine."""
    path = mention.split("::", 1)[0].rstrip(".,;:")
    cut = PLACEHOLDER.search(path)
    if cut:
        # `src/.../<analyzer>.py`, `bench/results/*.md`: the part before the placeholder
        # is a folder that must exist.
        path = path[: cut.start()].rsplit("/", 1)[0]
    if not (ROOT / path).exists():
        return f"`{mention}`: {path} does not exist"
    return None


def page_problems(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    prose, code = split_code(text)
    problems = []
    for number, line in prose:
        for target in LINK.findall(line):
            why = link_problem(page, target)
            if why:
                problems.append(f"{number}: {why}")
        for _, span in INLINE_CODE.findall(line):
            for mention in REPO_PATH.findall(span.strip()):
                why = path_problem(mention)
                if why:
                    problems.append(f"{number}: {why}")
            problems += short_path_problems(page, number, [span.strip()])
    for target in REF_DEF.findall("\n".join(line for _, line in prose)):
        why = link_problem(page, target)
        if why:
            problems.append(f"reference: {why}")
    for number, line in code:
        for mention in REPO_PATH.findall(line):
            why = path_problem(mention)
            if why:
                problems.append(f"{number}: {why}")
        # In commands only what is run (outputs like samples/x.json may not exist yet).
        scripts = [t for t in line.split() if t.endswith((".py", ".sh"))]
        problems += short_path_problems(page, number, scripts)
    return problems


def short_path_problems(page: Path, number: int, tokens: list[str]) -> list[str]:
    """`orchestrator/probe.py`-style paths among ``tokens`` that exist nowhere they could
    be read from: the repo root, the page's folder, the package, a model's folder."""
    bases = (ROOT, page.parent, PACKAGE, *sorted(MODELS.iterdir()))
    return [
        f"{number}: `{token}` exists neither in the repo root, the page's folder, the "
        "package nor a model's folder"
        for token in tokens
        if SHORT_PATH.match(token)
        and not REPO_PATH.match(token)
        and not any((base / token).exists() for base in bases)
    ]


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_and_paths_resolve_inside_the_repo(page):
    problems = page_problems(page)
    assert not problems, f"{page.relative_to(ROOT)}:\n  " + "\n  ".join(problems)


def test_the_pages_a_newcomer_needs_exist():
    for name in ("README.md", "docs/DESIGN.md", "docs/REPORT_CONTRACT.md"):
        assert (ROOT / name).is_file(), name
    for doc in ("docs/DESIGN.md", "docs/REPORT_CONTRACT.md", "docs/ADDING_AN_ANALYZER.md"):
        assert f"]({doc})" in (ROOT / "README.md").read_text(), f"README does not link {doc}"


def test_no_tracked_file_names_a_path_outside_the_repo():
    problems = []
    for name in tracked():
        text = _text(ROOT / name)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for pattern in OUTSIDE:
                if pattern.search(line):
                    problems.append(f"{name}:{number}: {line.strip()[:120]}")
    assert not problems, "paths outside the repo:\n  " + "\n  ".join(problems)


def test_code_cites_project_docs_by_their_path():
    """A comment that says "see DESIGN.md" must say docs/DESIGN.md, and that file must exist."""
    problems = []
    this = Path(__file__).resolve().relative_to(ROOT).as_posix()
    for name in tracked():
        # docs/ links its pages by relative links, checked above; this file names them
        # wrongly on purpose, as examples.
        if name.startswith("docs/") or name == this:
            continue
        text = _text(ROOT / name)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for prefix, doc in DOC_MENTION.findall(line):
                if not prefix.endswith("docs/"):
                    problems.append(f"{name}:{number}: {prefix}{doc}.md (write docs/{doc}.md)")
                elif not (ROOT / "docs" / f"{doc}.md").is_file():
                    problems.append(f"{name}:{number}: docs/{doc}.md does not exist")
    assert not problems, "project docs cited without their path:\n  " + "\n  ".join(problems)


def test_the_checks_catch_what_they_are_for(tmp_path):
    """The old README's link to the team's notes, a moved file, an escaping path and a
    missing anchor are each caught; a good link and a placeholder path pass."""
    page = ROOT / "README.md"
    assert link_problem(page, "../" + "shared/REPORT_CONTRACT.md")
    assert link_problem(page, "docs/NO_SUCH_PAGE.md")
    assert link_problem(page, "/etc/passwd")
    assert link_problem(page, "file:///etc/passwd")
    assert link_problem(page, "client/report.schema.json") is None
    assert link_problem(page, "#no-such-heading")
    assert path_problem("scripts/gen_model_repository.py")
    assert path_problem("src/tiktok_analyzer/serving/model_repository/_adapter")
    assert path_problem("src/tiktok_analyzer/analyzers/<module>.py") is None
    assert path_problem("src/nowhere/<module>.py")
    assert OUTSIDE[0].search("see [notes](../" + "shared/DESIGN.md)")
    assert OUTSIDE[1].search("cd /" + "work/main")
    old = tmp_path / "OLD.md"
    old.write_text("`orchestrator/triton_server.py` and `model_repository/generate.py`\n")
    assert len(page_problems(old)) == 2
    old.write_text("```sh\n.venv/bin/python model_repository/generate.py\n```\n")
    assert len(page_problems(old)) == 1
    assert DOC_MENTION.findall("(DESIGN.md, trap 1)") == [("", "DESIGN")]
