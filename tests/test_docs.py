"""The documentation stays true to the repository: its links resolve, every environment variable
the code location reads has a row in docs/configuration.md with its default, every `signals` command and option it
names exists and docs/operations.md names all of them, and no text cites a document that is not in
the repository."""

import argparse
import ast
import os
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
# A `signals` command line in a document: `signals status --team-id 1`, `.venv/bin/signals teams set 2 --consent`
# (backslash-continued lines joined first), up to the end of the line or of the code span.
COMMAND_LINE = re.compile(
    r"(^|[`/( ])signals((?:[ \t]+--debug)?[ \t]+[a-z][a-z-]*(?:[ \t]+(?:set|show)\b)?)([^`|;\n]*)"
)
OPTION = re.compile(r"(?<![\w-])--?[a-z][a-z-]*")
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


def test_every_signals_variable_the_scripts_tests_and_benchmarks_read_is_in_the_configuration_reference():
    sources = [
        path
        for folder in ("tests", "benchmarks", "scripts", "sandbox")
        for path in (REPO_ROOT / folder).rglob("*")
        if path.is_file() and (path.suffix == ".py" or (path.suffix == "" and path.parent.name == "scripts"))
    ]
    read = {
        name
        for source in sources
        for name in re.findall(r"[\"'{$]((?:SIGNALS)_[A-Z0-9_]*[A-Z0-9])\b", source.read_text(errors="replace"))
    }
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", (REPO_ROOT / "docs" / "configuration.md").read_text()))
    assert {"SIGNALS_TEST_CLICKHOUSE_URL", "SIGNALS_DOCKER_DATA", "SIGNALS_DATASETS"} <= read  # still found
    assert sorted(read - documented) == []


def documented_defaults() -> dict[str, str]:
    """Each variable of docs/configuration.md's tables with the first code span of its default cell (a row of
    several variables has one span per variable)."""
    defaults = {}
    for line in (REPO_ROOT / "docs" / "configuration.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
        spans = re.findall(r"`([^`]*)`", cells[1])
        for index, name in enumerate(names):
            if spans:
                defaults[name] = spans[index] if len(spans) == len(names) else spans[0]
    return defaults


def test_every_setting_has_its_default_in_the_configuration_reference():
    """Each `_env`/`_choice`/`_flag`/`_positive_int`/`_number`/`_identifier` read of settings.py, its default
    evaluated there (another setting's read: that variable's name), against the table's default."""
    import signals_assets.settings as settings

    readers = {"_env", "_choice", "_flag", "_positive_int", "_number", "_identifier"}
    documented = documented_defaults()
    checked, wrong = 0, []
    for node in ast.walk(ast.parse(Path(settings.__file__).read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in readers):
            continue
        name = node.args[0].value if isinstance(node.args[0], ast.Constant) else None
        if not isinstance(name, str) or name not in documented:
            continue
        if node.func.id == "_flag":
            default: object = "false"
        elif len(node.args) < 2:
            continue  # no default: the table says what it means unset
        elif isinstance(node.args[1], ast.Call) and getattr(node.args[1].func, "id", "") in readers:
            default = node.args[1].args[0].value  # another setting's value
        else:
            default = eval(ast.unparse(node.args[1]), vars(settings))  # the repository's own expressions
        expected = os.path.expanduser(documented[name])
        checked += 1
        if str(default) != expected and not (
            isinstance(default, (int, float)) and str(default) == expected.replace(",", "")
        ):
            wrong.append(f"{name}: the code's default {default!r}, the documented one {documented[name]!r}")
    assert checked > 30  # the reads are still found
    assert wrong == []


def cli_commands() -> dict[str, argparse.ArgumentParser]:
    """Every `signals` command (`teams set` and `teams show` by their two words) and its parser."""
    from signals_assets.cli.main import build_parser

    def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices

    commands = subcommands(build_parser())
    teams = subcommands(commands.pop("teams"))
    return commands | {f"teams {name}": parser for name, parser in teams.items()}


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings} - {"-h", "--help"}


def test_every_signals_command_and_option_a_document_names_exists():
    commands = cli_commands()
    named, unknown = 0, []
    for document in DOCUMENTS:
        for before, words, rest in COMMAND_LINE.findall(document.read_text().replace("\\\n", " ")):
            command = " ".join(word for word in words.split() if word != "--debug")
            if command not in commands:
                # prose ("signals are…") or a name (`signals model …`, a SQL comment) unless after a path
                # (`.venv/bin/signals`) or followed by an option
                if before == "/" or OPTION.match(rest.strip()):
                    unknown.append(f"{document.relative_to(REPO_ROOT)}: signals {command}{rest}: no such command")
                continue
            named += 1
            unknown += [
                f"{document.relative_to(REPO_ROOT)}: signals {command}{rest}: no option {option}"
                for option in sorted(set(OPTION.findall(rest)) - options(commands[command]) - {"--debug"})
            ]
    assert named > 100  # the pattern still finds the command lines
    assert unknown == []


def test_the_operations_guide_names_every_signals_command_and_option():
    guide = (REPO_ROOT / "docs" / "operations.md").read_text()
    missing = [
        f"signals {command}" + (f" {option}" if option else "")
        for command, parser in cli_commands().items()
        for option in ["", *sorted(options(parser))]
        if not re.search(rf"`signals {command}\b[^`]*{re.escape(option)}(?![\w-])", guide)
    ]
    assert missing == []


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
