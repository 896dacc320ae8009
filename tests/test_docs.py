"""The documentation stays true to the repository: its links resolve, and every environment
variable the code location reads has a row in docs/configuration.md."""

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
