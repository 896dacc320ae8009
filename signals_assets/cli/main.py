"""`signals` command line: emit signals, process them without a daemon, inspect teams and reports."""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
import warnings
from contextlib import contextmanager
from typing import Iterator

from signals_assets.display_text import visible_escapes
from signals_assets.ingestion.validation import (
    MAX_TEAM_ID,
    SignalValidationError,
    check_team_id,
    decode_json_object,
    shown,
)
from signals_assets.reports.lifecycle import STATUSES
from signals_assets.settings import load_settings
from signals_assets.storage.clickhouse import StoreError
from signals_assets.storage.object_store import ObjectStoreError

MAX_LIST_LIMIT = 100_000
MAX_WAIT_SECONDS = 7 * 24 * 3600
INTERNAL_ERROR_EXIT = 70  # sysexits' EX_SOFTWARE
OUTPUT_CLOSED_EXIT = 141  # as a command ended by SIGPIPE


class CliError(Exception):
    """A misuse or a refusal, shown as one line on stderr."""


def one_line(text: object) -> str:
    """Untrusted text (a signal, a title) as one line of the human-readable output: a line break in it
    (newline, U+2028, U+0085…) must not start a line of its own, such as a forged report."""
    return " ".join(str(text).split())


class _OutputClosed(Exception):
    """Standard output's reader has gone (`signals list-reports … | head`): no error of the command."""


class _TerminalSafeStream:
    """Stdout through `visible_escapes`, for every command's output. JSON output is unchanged: json.dumps
    already escapes all of those characters."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(visible_escapes(text))
        except BrokenPipeError:
            raise _OutputClosed from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise _OutputClosed from None

    def __getattr__(self, name):
        return getattr(self._stream, name)


def err(message: str) -> None:
    print(visible_escapes(message), file=sys.stderr, flush=True)


def progress(done: int, total: int, label: str) -> None:
    if not sys.stderr.isatty() and done not in (total,) and done % max(1, total // 10):
        return
    width = 30
    filled = int(width * done / total) if total else width
    end = "\n" if done >= total else ""
    print(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end=end, file=sys.stderr, flush=True)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, like every other error of the command."""

    def error(self, message: str):
        self.exit(2, visible_escapes(f"{self.prog}: error: {message} (see {self.prog} --help)") + "\n")


def team_id_arg(text: str) -> int:
    try:  # at most 20 digits: more is out of range anyway, and int() stays cheap
        return check_team_id(int(text) if re.fullmatch("[0-9]{1,20}", text) else text)
    except SignalValidationError as error:
        raise argparse.ArgumentTypeError(error.rule) from None


def int_arg(minimum: int, maximum: int):
    def parse(text: str) -> int:
        if not re.fullmatch("-?[0-9]{1,20}", text) or not minimum <= int(text) <= maximum:
            raise argparse.ArgumentTypeError(f"must be an integer from {minimum} to {maximum}, got {shown(text)}")
        return int(text)

    return parse


def seconds_arg(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= MAX_WAIT_SECONDS:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be a number of seconds from 0 to {MAX_WAIT_SECONDS}, got {shown(text)}")
    return seconds


def json_object_arg(text: str) -> dict:
    try:
        return decode_json_object(text, "--extra")
    except SignalValidationError as error:
        raise argparse.ArgumentTypeError(error.rule) from None


def build_parser() -> argparse.ArgumentParser:
    # Imported here: the handlers report through this module's `err`, `progress` and `CliError`.
    from signals_assets.cli import commands

    parser = _Parser(prog="signals", description=__doc__)
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an internal error (also SIGNALS_DEBUG=1)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    team_id = {"type": team_id_arg, "metavar": "TEAM_ID", "help": f"1 to {MAX_TEAM_ID}"}

    emit = sub.add_parser("emit", help="emit one signal")
    emit.add_argument("--team-id", required=True, **team_id)
    emit.add_argument("--source-product", required=True)
    emit.add_argument("--source-type", required=True)
    emit.add_argument("--source-id", required=True)
    emit.add_argument("--description", required=True)
    emit.add_argument("--weight", type=float, default=0.5)
    emit.add_argument("--extra", type=json_object_arg, help="JSON object of source-specific fields")
    emit.add_argument("--idempotency-key")
    emit.set_defaults(handler=commands.cmd_emit)

    emit_file = sub.add_parser("emit-file", help="emit every line of a JSONL file (all validated first)")
    emit_file.add_argument("file")
    emit_file.add_argument("--team-id", required=True, **team_id)
    emit_file.add_argument(
        "--skip-invalid",
        action="store_true",
        help="emit the valid lines even when others are invalid (those are listed)",
    )
    emit_file.set_defaults(handler=commands.cmd_emit_file)

    fixture = sub.add_parser("emit-fixture", help="emit a named signal set that ships with the repository")
    fixture.add_argument("name", help="demo or safety-corpus")
    fixture.add_argument("--team-id", type=team_id_arg, default=1, metavar="TEAM_ID", help="default 1")
    fixture.set_defaults(handler=commands.cmd_emit_fixture)

    process = sub.add_parser("process", help="claim pending signals and run the whole pipeline now, in-process")
    process.set_defaults(handler=commands.cmd_process)

    regroup = sub.add_parser(
        "regroup",
        help="re-group all of a team's signals (after a provider, model or "
        "parameter change) and research the reports it promotes",
    )
    regroup.add_argument("--team-id", required=True, **team_id)
    regroup.set_defaults(handler=commands.cmd_regroup)

    status = sub.add_parser("status", help="pipeline status for a team")
    status.add_argument("--team-id", required=True, **team_id)
    status.add_argument("--wait", action="store_true", help="wait until nothing is in flight")
    status.add_argument("--expected-signals", type=int_arg(0, 2**63 - 1))
    status.add_argument("--timeout", type=seconds_arg, default=600)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=commands.cmd_status)

    unpark = sub.add_parser("unpark", help="retry a parked batch or report round (see `status`)")
    unpark.add_argument("key", help="batch key (b2026…Z) or report round (r<team>-<id>-round<N>)")
    unpark.set_defaults(handler=commands.cmd_unpark)

    reports = sub.add_parser("list-reports", help="list a team's reports")
    reports.add_argument("--team-id", required=True, **team_id)
    reports.add_argument("--status", choices=STATUSES)
    reports.add_argument("--signals", action="store_true")
    reports.add_argument("--json", action="store_true")
    reports.add_argument("--limit", type=int_arg(1, MAX_LIST_LIMIT), default=100)
    reports.set_defaults(handler=commands.cmd_list_reports)

    cleanup = sub.add_parser(
        "cleanup",
        help="delete everything of a team: signals, embeddings, reports, research logs, inbox and batch "
        "objects, report partitions and runs, and its configuration",
    )
    cleanup.add_argument("--team-id", required=True, **team_id)
    cleanup.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    cleanup.add_argument("--keep-config", action="store_true", help="keep the team's configuration (consent, repos)")
    cleanup.set_defaults(handler=commands.cmd_cleanup)

    export = sub.add_parser("export-report", help="write a report and its signals as JSON")
    export.add_argument("report_id", metavar="REPORT_ID", help="r<team>-<16 hex digits>")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    export.set_defaults(handler=commands.cmd_export_report)

    import_ = sub.add_parser(
        "import-report", help="emit the signals of an exported report for a team (grouped again; idempotent)"
    )
    import_.add_argument("file")
    import_.add_argument("--team-id", required=True, **team_id)
    import_.set_defaults(handler=commands.cmd_import_report)

    teams = sub.add_parser("teams", help="team configuration")
    teams_sub = teams.add_subparsers(dest="teams_command", required=True)
    teams_set = teams_sub.add_parser("set", help="create or update a team")
    teams_set.add_argument("team_id", **team_id)
    teams_set.add_argument(
        "--repo",
        action="append",
        default=[],
        help="code repository folder (repeatable; not a system tree such as /etc)",
    )
    teams_set.add_argument("--consent", dest="consent", action="store_true", default=None)
    teams_set.add_argument("--no-consent", dest="consent", action="store_false")
    teams_set.add_argument("--enable", action="append", default=[], metavar="PRODUCT/TYPE")
    teams_set.add_argument(
        "--max-signals-per-batch",
        type=int_arg(1, 10**9),
        help="this team's cap per batch (default: SIGNALS_MAX_SIGNALS_PER_TEAM_BATCH)",
    )
    teams_set.add_argument(
        "--max-reports-per-day",
        type=int_arg(1, 10**9),
        help="this team's report rounds per UTC day (default: SIGNALS_MAX_REPORTS_PER_TEAM_DAY)",
    )
    teams_set.set_defaults(handler=commands.cmd_teams_set)
    teams_show = teams_sub.add_parser("show", help="show a team")
    teams_show.add_argument("team_id", **team_id)
    teams_show.set_defaults(handler=commands.cmd_teams_show)
    return parser


@contextmanager
def _terminal_safe_stdout() -> Iterator[None]:
    stdout, sys.stdout = sys.stdout, _TerminalSafeStream(sys.stdout)
    try:
        yield
    finally:
        sys.stdout = stdout


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def silence_dagster_maturity_warnings() -> None:
    """Hide Dagster's Beta and Preview warnings (about APIs the code location uses on purpose) from the
    terminal; every other warning still shows. Dagster's shared package defines the two categories."""
    from dagster_shared.utils.warnings import BetaWarning, PreviewWarning

    warnings.filterwarnings("ignore", category=BetaWarning)
    warnings.filterwarnings("ignore", category=PreviewWarning)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("SIGNALS_DEBUG", "").strip().lower() in ("1", "true", "yes")
    if not debug:
        silence_dagster_maturity_warnings()
        # clickhouse-connect logs a failed request before raising it; the error line says it once.
        logging.getLogger("clickhouse_connect").setLevel(logging.CRITICAL)
    with _terminal_safe_stdout():
        try:
            code = args.handler(args, load_settings())
            sys.stdout.flush()  # a reader gone by now is found here, not reported by the interpreter's exit
            return code
        except _OutputClosed:
            # Nothing more reaches the reader; the interpreter's last flush of the pipe must not fail either.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return OUTPUT_CLOSED_EXIT
        except CliError as error:
            err(f"error: {error}")
            return 2
        except ValueError as error:  # validation errors carry the field and the rule
            err(f"error: {error if debug else _first_line(error)}")
            return 2
        except (OSError, StoreError, ObjectStoreError) as error:
            err(f"error: {error if debug else _first_line(error)}")
            return 1
        except KeyboardInterrupt:
            err("interrupted")
            return 130
        except Exception as error:
            if debug:
                raise
            err(
                f"internal error: {type(error).__name__}: {_first_line(error)} "
                "(run with --debug or SIGNALS_DEBUG=1 for the traceback)"
            )
            return INTERNAL_ERROR_EXIT
