"""The documentation stays true to the repository: its links resolve, every environment variable
the code location reads has a row in docs/configuration.md, and no text cites a document that is
not in the repository."""

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [
    REPO_ROOT / "README.md",
    *sorted((REPO_ROOT / "docs").glob("*.md")),
    REPO_ROOT / "benchmarks" / "README.md",
    REPO_ROOT / "deploy" / "README.md",
    REPO_ROOT / "dbt_like_sql" / "README.md",
]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*)$", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
# A quoted environment variable name in the code location's source.
VARIABLE = re.compile(r"[\"']((?:SIGNALS|OPENAI|DAGSTER|AWS)_[A-Z0-9_]+)[\"']")
# Citations of the design notes and issue tracker that live outside the repository.
OUTSIDE_CITATION = re.compile(r"\bDESIGN(\.md)?\b|§|\b[Ii]ssue \d+\b|posthog-signals")
CITATION_SCOPE = [
    "README.md",
    "pyproject.toml",
    "docs",
    "signals_assets",
    "tests",
    "benchmarks",
    "scripts",
    "deploy",
    "sandbox",
    "dbt_like_sql",
]


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation other than `-` dropped, spaces to `-`."""
    headings = HEADING.findall(FENCE.sub("", markdown))
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_every_relative_link_reaches_a_file_and_heading():
    broken = []
    for document in DOCUMENTS:
        for target in LINK.findall(FENCE.sub("", document.read_text())):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            resolved = (document.parent / path).resolve() if path else document
            if not resolved.exists():
                broken.append(f"{document.relative_to(REPO_ROOT)}: {target}: no such file")
            elif anchor and anchor not in anchors(resolved.read_text()):
                broken.append(f"{document.relative_to(REPO_ROOT)}: {target}: no such heading")
    assert broken == []


def test_every_variable_the_code_reads_is_in_the_configuration_reference():
    sources = (REPO_ROOT / "signals_assets").rglob("*.py")
    read = {name for source in sources for name in VARIABLE.findall(source.read_text())}
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", (REPO_ROOT / "docs" / "configuration.md").read_text()))
    assert len(read) > 30  # the pattern still finds the settings
    assert sorted(read - documented) == []


def test_no_text_cites_a_document_outside_the_repository():
    files = [
        path
        for entry in CITATION_SCOPE
        for path in ([REPO_ROOT / entry] if (REPO_ROOT / entry).is_file() else (REPO_ROOT / entry).rglob("*"))
    ]
    checked = [
        path
        for path in files
        if path.is_file()
        and path != Path(__file__).resolve()
        and path.suffix in (".md", ".py", ".sql", ".yaml", ".toml", "")
    ]
    citations = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()[:80]}"
        for path in checked
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE_CITATION.search(line)
    ]
    assert len(checked) > 100
    assert citations == []
