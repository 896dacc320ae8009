"""The `signals` command handlers: one `cmd_*` function per command, called with the parsed arguments."""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterator

from signals_assets.cli.main import CliError, err, one_line, progress
from signals_assets.cli.read_models import (
    is_settled,
    list_reports,
    only_parked_left,
    team_batches,
    team_status,
    unfinished_work,
)
from signals_assets.ingestion.validation import SignalValidationError, decode_json_object, shown, without_utf8_bom
from signals_assets.partition_keys import SIGNAL_BATCHES, key_ordered_ranges
from signals_assets.settings import Settings, home_folder
from signals_assets.storage.object_store import open_object_store

if TYPE_CHECKING:  # dagster is imported only by the commands that run jobs
    import dagster as dg

    from signals_assets.sensors.report_promotion import PromotionWork

INVALID_LINES_SHOWN = 20
# A JSON line may hold its text escaped (`\uXXXX`, what `json.dumps` writes by default): up to 6 bytes
# per byte of the signal. Lines are read that far, and the signal they hold is measured by the same
# rules as at every other entry.
JSON_ESCAPE_FACTOR = 6
MAX_IMPORT_FILE_BYTES = 1 << 30


def cmd_emit(args, settings: Settings) -> int:
    from signals_assets.ingestion.emit import emit_signal_result

    result = emit_signal_result(
        team_id=args.team_id,
        source_product=args.source_product,
        source_type=args.source_type,
        source_id=args.source_id,
        description=args.description,
        weight=args.weight,
        extra=args.extra or {},
        idempotency_key=args.idempotency_key,
        store=open_object_store(settings),
        settings=settings,
    )
    if result.signal_id is None:
        err(f"not emitted: {result.gated_reason}")
        return 3
    print(result.signal_id)
    return 0


def _bounded_lines(handle: BinaryIO, max_bytes: int) -> Iterator[bytes | None]:
    """The file's lines; None for a line over `max_bytes`, skipped without ever holding it whole."""
    while line := handle.readline(max_bytes + 1):
        if len(line) <= max_bytes or line.endswith(b"\n"):
            yield line
            continue
        while line and not line.endswith(b"\n"):
            line = handle.readline(max_bytes + 1)
        yield None


def _line_payload(line: bytes | None, team_id: int, settings: Settings) -> dict:
    """One JSONL line as a valid signal payload of team `team_id`; SignalValidationError otherwise."""
    from signals_assets.ingestion.validation import validate_signal

    limits = settings.signal_limits
    if line is None:
        raise SignalValidationError(
            "line",
            f"must be at most {JSON_ESCAPE_FACTOR * limits.max_signal_bytes} bytes "
            f"({JSON_ESCAPE_FACTOR} × SIGNALS_MAX_SIGNAL_BYTES, room for JSON escapes)",
        )
    payload = decode_json_object(line, "line")
    payload.setdefault("team_id", team_id)
    if payload["team_id"] != team_id:
        raise SignalValidationError("team_id", f"must be {team_id} (--team-id), got {shown(payload['team_id'])}")
    validate_signal(payload, limits)
    return payload


def _read_jsonl(path: Path, team_id: int, settings: Settings) -> tuple[list[dict], list[str]]:
    """The valid payloads of the file, and one message per invalid line."""
    payloads, errors = [], []
    try:
        handle = open(path, "rb")
    except OSError as error:  # missing, a folder, a symlink loop, no permission
        raise CliError(f"emit-file: cannot read {path}: {error.strerror or error}") from None
    with handle:
        for number, line in enumerate(
            _bounded_lines(handle, JSON_ESCAPE_FACTOR * settings.signal_limits.max_signal_bytes), start=1
        ):
            if line is not None and number == 1:
                line = without_utf8_bom(line)
            if line is not None and not line.strip():
                continue
            try:
                payloads.append(_line_payload(line, team_id, settings))
            except SignalValidationError as error:
                errors.append(f"{path}:{number}: {error}")
    return payloads, errors


def cmd_emit_file(args, settings: Settings) -> int:
    payloads, errors = _read_jsonl(Path(args.file), args.team_id, settings)
    return _emit_valid(payloads, errors, args.skip_invalid, settings)


def _emit_valid(payloads: list[dict], errors: list[str], skip_invalid: bool, settings: Settings) -> int:
    """Emit `payloads` (validated) unless there are `errors` and not `skip_invalid`; one JSON summary line."""
    from signals_assets.ingestion.emit import emit_signal_result

    for message in errors[:INVALID_LINES_SHOWN]:
        err(message)
    if len(errors) > INVALID_LINES_SHOWN:
        err(f"… and {len(errors) - INVALID_LINES_SHOWN} more invalid lines")
    if errors and not skip_invalid:
        raise CliError(f"nothing emitted: {len(errors)} invalid line(s) (--skip-invalid emits the valid ones)")
    store = open_object_store(settings)
    emitted, gated = 0, {}
    for index, payload in enumerate(payloads, start=1):
        result = emit_signal_result(**payload, store=store, settings=settings)
        if result.signal_id:
            emitted += 1
        else:
            gated[result.gated_reason] = gated.get(result.gated_reason, 0) + 1
        progress(index, len(payloads), "emitting")
    print(json.dumps({"emitted": emitted, "not_emitted": gated, "invalid_lines": len(errors)}))
    return 0 if not gated and not errors else 3


def cmd_emit_fixture(args, settings: Settings) -> int:
    from signals_assets.ingestion.validation import validate_signal
    from signals_assets.operations.fixtures import fixture_payloads

    try:
        fixture = fixture_payloads(args.name)
    except (ValueError, FileNotFoundError) as error:
        raise CliError(str(error)) from None
    payloads, errors = [], []
    for number, payload in enumerate(fixture, start=1):
        try:
            payloads.append(validate_signal({**payload, "team_id": args.team_id}, settings.signal_limits).__dict__)
        except SignalValidationError as error:
            errors.append(f"{args.name}:{number}: {error}")
    return _emit_valid(payloads, errors, skip_invalid=False, settings=settings)


def cmd_teams_set(args, settings: Settings) -> int:
    from signals_assets.ingestion.teams import TeamConfig, load_team, repository_folder, save_team

    store = open_object_store(settings)
    try:
        current = load_team(store, args.team_id) or TeamConfig(team_id=args.team_id)
    except ValueError as invalid:  # nothing in it can be kept: set afresh from the arguments
        err(f"warning: {invalid}; replaced by the settings given here")
        current = TeamConfig(team_id=args.team_id)
    try:
        repositories = (
            [repository_folder(p, settings.signals_home) for p in args.repo] if args.repo else current.repositories
        )
    except ValueError as error:
        raise CliError(f"--repo: {error}") from None
    config = TeamConfig(
        team_id=args.team_id,
        ai_processing_consent=current.ai_processing_consent if args.consent is None else args.consent,
        enabled_sources=args.enable if args.enable else current.enabled_sources,
        repositories=repositories,
        max_signals_per_batch=args.max_signals_per_batch or current.max_signals_per_batch,
        max_reports_per_day=args.max_reports_per_day or current.max_reports_per_day,
    )
    save_team(store, config)
    print(json.dumps(config.__dict__, indent=1))
    return 0


def cmd_teams_show(args, settings: Settings) -> int:
    from signals_assets.ingestion.teams import load_team

    config = load_team(open_object_store(settings), args.team_id)
    if config is None:
        raise CliError(f"team {args.team_id} is not configured (run: signals teams set {args.team_id} --consent)")
    print(json.dumps(config.__dict__, indent=1))
    return 0


LOCAL_INSTANCE_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "dagster.local.yaml"


def ensure_dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME, by default (unset or empty, as for every setting) beside the data, with the local
    instance settings when it has none (written whole or not at all: another command may read it at the
    same time). A relative one is taken from the current folder, as SIGNALS_HOME is: Dagster takes an
    absolute path only, and would refuse it after the folder was made."""
    given = os.environ.get("DAGSTER_HOME", "").strip()
    try:
        home = home_folder("DAGSTER_HOME", given or str(settings.signals_home / "dagster_home"))
    except ValueError as error:
        raise CliError(str(error)) from None
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    if not (home / "dagster.yaml").exists() and LOCAL_INSTANCE_CONFIG.exists():
        partial = home / f".dagster.yaml.{os.getpid()}"
        shutil.copy(LOCAL_INSTANCE_CONFIG, partial)
        os.replace(partial, home / "dagster.yaml")
    return home


# Another command creating the instance holds the lock for seconds; a minute or two on a loaded machine.
INSTANCE_LOCK_TIMEOUT_SECONDS = 120


def open_instance(settings: Settings) -> dg.DagsterInstance:
    """The Dagster instance at DAGSTER_HOME (`ensure_dagster_home`), opened under a lock in that folder:
    opening a new sqlite instance creates its tables, and two commands doing it at once (two `signals
    process` on a fresh home) both tried; the second failed with "table runs already exists"."""
    import dagster as dg

    from signals_assets.storage.clickhouse import FileLock

    home = ensure_dagster_home(settings)
    with FileLock(home / ".instance.lock", INSTANCE_LOCK_TIMEOUT_SECONDS, err, what="the Dagster instance"):
        return dg.DagsterInstance.get()


# Runs still log everything to the instance; the terminal gets warnings and the progress lines.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def in_process_tags(run_key: str | None = None) -> dict:
    """Tags of a run this process executes itself: no Dagster retry will come for it (the next
    `signals process` or the sensors make the next attempt), and its process can be found dead (a dead
    one is failed and its pool slots freed); `run_key` the sensor's attempt it is."""
    import socket

    from signals_assets.sensors.dead_runs import HOST_TAG, PID_TAG
    from signals_assets.sensors.run_attempts import RUN_KEY_TAG

    worker = {"dagster/max_retries": "0", HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    return {RUN_KEY_TAG: run_key, **worker} if run_key else worker


def add_partitions(instance: dg.DagsterInstance, request: dg.AddDynamicPartitionsRequest) -> None:
    """Apply a sensor's AddDynamicPartitionsRequest (for a sensor's result the daemon does it). Another
    process (a second `signals process`, the daemon) may add the same keys at the same time: on the
    embedded instance Dagster checks which keys exist, then inserts the others, so the insert that comes
    second fails on the unique constraint; its second try finds them present."""
    from sqlalchemy.exc import IntegrityError

    keys = list(request.partition_keys)
    try:
        instance.add_dynamic_partitions(request.partitions_def_name, keys)
    except IntegrityError:
        instance.add_dynamic_partitions(request.partitions_def_name, keys)


def run_batches(request: dg.RunRequest) -> list[str]:
    """The batches a batch run request covers, in key order."""
    from signals_assets.jobs import attempted_batches

    return attempted_batches(request.partition_key, request.tags)


def execute_request(
    job: dg.JobDefinition, request: dg.RunRequest, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    """Execute a sensor's RunRequest here and now: the same partition, run key and tags."""
    import dagster as dg

    from signals_assets.sensors.dead_runs import INTERRUPTED_TAG, PID_TAG
    from signals_assets.sensors.run_attempts import RUN_KEY_TAG

    assert request.run_key is not None, "the sensors key every run request by its attempt"
    # A partition range (batch or report runs) is in the request's tags.
    try:
        result = job.execute_in_process(
            partition_key=request.partition_key,
            instance=instance,
            raise_on_error=False,
            tags={**request.tags, **in_process_tags(request.run_key)},
            run_config=QUIET_RUN_CONFIG,
        )
        if result.success or not was_interrupted(result):
            return result
    except dg.DagsterExecutionInterruptedError:  # between steps, Dagster raises it out of the run
        pass
    # Ctrl-C (or SIGTERM, which Dagster handles alike) of this command cut the run off, as a kill of it
    # would: no failure of its batches or rounds, so an operator's interruptions never park healthy work.
    tags = {RUN_KEY_TAG: request.run_key, PID_TAG: str(os.getpid())}
    for run in instance.get_runs(dg.RunsFilter(tags=tags), limit=1):
        instance.add_run_tags(run.run_id, {INTERRUPTED_TAG: run.run_id})
        err(f"run {run.run_id} interrupted: not counted as a failed attempt; `signals process` resumes it")
    raise KeyboardInterrupt


def was_interrupted(result: dg.ExecuteInProcessResult) -> bool:
    """Whether the run failed because this process was interrupted (Dagster raises its own error in the
    step or between steps on SIGINT and SIGTERM)."""
    import dagster as dg

    name = dg.DagsterExecutionInterruptedError.__name__
    return any(
        getattr(getattr(event.event_specific_data, "error", None), "cls_name", None) == name
        for event in result.all_events
        if event.is_failure
    )


# Work with a run queued or running (the daemon's, or another `signals process`'s) is left to it.
LEFT_TO_ITS_RUN = "left to the run queued or running for it (the daemon's or another `signals process`'s)"


def cmd_process(args, settings: Settings) -> int:
    """Claim what is pending, then resume every unfinished batch (key order) and report round with
    the functions the sensors use; exit 1 and name what is left while anything is unfinished."""
    instance = open_instance(settings)
    from signals_assets.definitions import defs
    from signals_assets.ingestion import inbox
    from signals_assets.jobs import signal_batch_job
    from signals_assets.resources.sandbox import remove_ended_runs_work_dirs, run_is_alive
    from signals_assets.sensors.dead_runs import fail_dead_runs
    from signals_assets.sensors.signal_inbox import batch_work, unrecorded_batch_work

    store = open_object_store(settings)
    # runs a killed `signals process` or daemon left STARTED (or the daemon left queued), and pool slots
    # they hold: else we wait forever
    for line in fail_dead_runs(instance, queued=True):
        err(line)
    # and the research work dirs (a report and its signals) ended runs left: without a daemon, whose research
    # reconciler removes them, they stayed in the temporary folder
    for path in remove_ended_runs_work_dirs(functools.partial(run_is_alive, instance), err):
        err(f"removed the research work dir {path} of an ended run")
    inbox.claim_all(store, settings.batch_max_signals, settings.max_signals_per_team_batch)
    definitions = defs()
    batch_job = definitions.resolve_job_def(signal_batch_job.name)
    started = time.monotonic()
    # No back-off and no waiting for the daemon's retries: the operator asked for an attempt now.
    work = batch_work(instance, store, settings.max_attempts, backoff_seconds=0, daemon_retries=False)
    for batch in work.in_flight:
        err(f"batch {batch}: {LEFT_TO_ITS_RUN}")
    for folder in work.stray:
        err(f"{one_line(folder)}: a stray folder (no batch key), not processed; `signals status` says what to do")
    # The ranges are decided on the partition set before the new batches are appended to it.
    requests = work.run_requests(instance.get_dynamic_partitions(SIGNAL_BATCHES), settings.max_batches_per_run)
    add_partitions(instance, work.partitions_request())
    if requests and settings.embedder == "minilm":
        from signals_assets.llm.minilm import preload_encoder

        # Earlier than buffered_signals' own preload (a no-op then): the model loads while the run is
        # created, not beside the screening's store writes (measured 0.8 s slower there).
        preload_encoder()
    grouped = 0
    for index, request in enumerate(requests, start=1):
        batches = run_batches(request)
        err(f"run {index}/{len(requests)} {batches[0]} ({len(batches)} batch(es)): buffering, embedding, grouping")
        result = execute_request(batch_job, request, instance)
        if not result.success:
            left = sorted(set(batches) & set(inbox.unfinished_batches(store)))
            err(
                f"run {result.run_id} failed with {len(left)} of its batches unfinished; later batches wait (key order)"
            )
            grouped += len(batches) - len(left)
            break
        grouped += len(batches)
    recording = unrecorded_batch_work(instance, store, daemon_retries=False)
    for request in recording.run_requests(
        instance.get_dynamic_partitions(SIGNAL_BATCHES), settings.max_batches_per_run
    ):
        batches = run_batches(request)
        record_in_dagster(batch_job, request, instance, f"batch(es) {batches[0]}…{batches[-1]}")
    researched, failed = research_pending(definitions, instance, store, settings)
    left = unfinished_work(store)
    for line in left:
        err(f"unfinished: {one_line(line)}")  # a park reason may quote a server's text
    print(
        json.dumps(
            {
                "batches": grouped,
                "reports_researched": researched,
                "reports_failed": failed,
                "unfinished": left,
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    )
    return 1 if failed or left else 0


def research_pending(
    definitions, instance, store, settings: Settings, now: float | None = None
) -> tuple[int, list[str]]:
    """The report runs the promotion sensor would request for the pending promotions (as it decides at
    `now`, without back-off), executed here; the number of rounds researched and the report ids whose
    run failed."""
    from dagster import DagsterInvalidInvocationError, DagsterUnknownPartitionError

    from signals_assets.assets.reports import ROUNDS_TAG
    from signals_assets.cli.read_models import store_session
    from signals_assets.jobs import report_job
    from signals_assets.partition_keys import REPORTS
    from signals_assets.sensors.report_promotion import promotion_work, unrecorded_report_requests

    work = promotion_work(
        instance,
        store,
        settings.max_attempts,
        backoff_seconds=0,
        now=now,
        daemon_retries=False,
        max_reports_per_team_day=settings.max_reports_per_team_day,
    )
    for unit in work.in_flight:
        err(f"report round {unit}: {LEFT_TO_ITS_RUN}")
    requests = work.run_requests(instance.get_dynamic_partitions(REPORTS), settings.reports_per_run)
    add_partitions(instance, work.partitions_request())
    job = definitions.resolve_job_def(report_job.name)
    report_of = {key: p["report_id"] for p, key in work.to_run}
    researched, failed = 0, []
    pending, decisions, done = deque(requests), 0, 0
    while pending:
        request = pending.popleft()
        rounds = request.tags[ROUNDS_TAG].split()
        runs_now, _ = report_runs_now(instance, work, request, settings.reports_per_run)
        result = None
        if runs_now == [request]:
            try:
                result = execute_request(job, request, instance)
            except (DagsterUnknownPartitionError, DagsterInvalidInvocationError):
                # Perhaps retired in the moment since `report_runs_now` looked; a range run is created
                # before its range is resolved.
                fail_unstarted_run(instance, request, "its report partitions were retired as it started")
                runs_now, retired = report_runs_now(instance, work, request, settings.reports_per_run)
                if not retired:
                    raise  # no partition of the run was retired: another error
        if result is None:
            decisions += 1
            if decisions > MAX_REPORT_RUN_DECISIONS:
                err(f"report rounds {' '.join(rounds)}: {RETIRED_AGAIN}; left to the next run")
            else:
                pending.extendleft(reversed(runs_now))
            continue
        if result.success:
            ended_failed = failed_reports(result)
        else:
            ended_failed = {report_of[key]: f"its report run {result.run_id} failed" for key in rounds}
        researched += sum(1 for key in rounds if report_of[key] not in ended_failed)
        for report, why in sorted(ended_failed.items()):
            err(f"report {report}: {one_line(why)}")
        failed += sorted(ended_failed)
        done += 1
        progress(done, done + len(pending), "researching reports")
    for request in unrecorded_report_requests(
        instance, store, functools.partial(store_session, settings), daemon_retries=False
    ):
        record_in_dagster(job, request, instance, f"report {request.partition_key}")
    return researched, failed


def record_in_dagster(job: dg.JobDefinition, request: dg.RunRequest, instance: dg.DagsterInstance, what: str) -> None:
    """Execute a run that records `what` (done in the store by a failed run, with no materialisation),
    and say how it went."""
    from dagster import DagsterInvalidInvocationError, DagsterUnknownPartitionError

    try:
        result = execute_request(job, request, instance)
    except (DagsterUnknownPartitionError, DagsterInvalidInvocationError):
        # Retired (partition_retirement_sensor) since it was looked at: no partition left to show it.
        fail_unstarted_run(instance, request, "its partitions were retired as it started")
        outcome = "its partitions were retired as it started, not recorded"
    else:
        outcome = "recorded" if result.success else f"run {result.run_id} failed, not recorded"
    err(f"{what}: done by a failed run, unrecorded in Dagster: {outcome}")


# How often one command decides its report runs again while their partitions keep being retired.
MAX_REPORT_RUN_DECISIONS = 10
RETIRED_AGAIN = "their partitions were retired (partition_retirement_sensor) as often as they were added back"


def report_runs_now(
    instance: dg.DagsterInstance, work: PromotionWork, request: dg.RunRequest, reports_per_run: int
) -> tuple[list[dg.RunRequest], list[str]]:
    """The report run `request`, decided with the others before the earlier ones ran, as it can run on
    the `reports` partition set now (`[request]`, or the runs decided again), and its reports that had
    lost their partition. The partition-retirement sensor plans, then the daemon deletes key by key,
    so a report promoted in between can lose its partition after its run was decided (executed, the
    run would fail on an unknown partition, or its range would leave the report out). Such a report is
    added back (its promotion is pending, so no later plan retires it; its data never left the store)
    and its rounds decided again on the set as it is: a key added back comes last, so a range may split."""
    from signals_assets.assets.reports import ROUNDS_TAG
    from signals_assets.partition_keys import REPORTS
    from signals_assets.partitions import reports

    rounds = set(request.tags[ROUNDS_TAG].split())
    order = instance.get_dynamic_partitions(REPORTS)
    retired = sorted({p["report_id"] for p, key in work.to_run if key in rounds} - set(order))
    if retired:
        err(
            f"report(s) {', '.join(retired)}: partition retired after the run was decided "
            "(partition_retirement_sensor); added back, the run decided again"
        )
        add_partitions(instance, reports.build_add_request(retired))
        order = instance.get_dynamic_partitions(REPORTS)
    again = work.run_requests_for(rounds, order, reports_per_run)
    return ([request] if [partitions_of(r) for r in again] == [partitions_of(request)] else again), retired


def fail_unstarted_run(instance: dg.DagsterInstance, request: dg.RunRequest, why: str) -> None:
    """Fail the run this process created for `request` and could not start, so that it holds nothing
    (the partition-retirement sensor waits while a run's range cannot be told)."""
    import dagster as dg

    from signals_assets.sensors.dead_runs import PID_TAG
    from signals_assets.sensors.run_attempts import RUN_KEY_TAG

    tags = {RUN_KEY_TAG: request.run_key or "", PID_TAG: str(os.getpid())}
    for run in instance.get_runs(dg.RunsFilter(tags=tags, statuses=[dg.DagsterRunStatus.NOT_STARTED])):
        instance.report_run_failed(run, why)


def partitions_of(request: dg.RunRequest) -> tuple[str | None, str | None, str | None]:
    """The partition or range a run request targets."""
    from signals_assets.jobs import RANGE_END_TAG, RANGE_START_TAG

    return request.partition_key, request.tags.get(RANGE_START_TAG), request.tags.get(RANGE_END_TAG)


def failed_reports(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """The reports whose judgement or research failed in a report run, each with the stage and reason
    its materialisation metadata gives (a report judged unsafe is an outcome, not a failure)."""
    from signals_assets.assets.reports import FAILED_IN

    return {
        str(event.partition): f"{event.metadata[FAILED_IN].value} failed: {event.metadata['reason'].value}"
        for node in ("report_summaries", "report_research")
        for event in result.asset_materializations_for_node(node)
        if FAILED_IN in event.metadata
    }


def cmd_unpark(args, settings: Settings) -> int:
    """Give a parked batch or report round a fresh attempt budget; the sensors (or `signals process`) resume it."""
    from signals_assets.ingestion import inbox
    from signals_assets.partition_keys import is_batch_key
    from signals_assets.reports import promotions

    store = open_object_store(settings)
    match = [
        p for p in promotions.all_promotions(store) if promotions.promotion_unit(p["report_id"], p["round"]) == args.key
    ]
    if match:
        record = promotions.unpark_promotion(store, match[0])
    elif is_batch_key(args.key):
        record = inbox.unpark_batch(store, args.key)
    else:
        raise CliError(
            f"unpark: {args.key!r} is neither a batch key (b…Z) nor a pending report round (r…-round<N>); "
            "`signals status` lists what is parked"
        )
    print(json.dumps({"unparked": args.key, "was": record}))
    return 0


def cmd_regroup(args, settings: Settings) -> int:
    """Re-group every batch holding the team's signals, in order, then research new promotions."""
    import dagster as dg

    from signals_assets.definitions import defs
    from signals_assets.ingestion import inbox
    from signals_assets.ingestion.teams import gate_reason, load_team
    from signals_assets.jobs import RANGE_END_TAG, RANGE_START_TAG, regroup_job
    from signals_assets.partitions import signal_batches
    from signals_assets.sensors.dead_runs import fail_dead_runs

    # Re-grouping processes the team's signals again (with the `openai` provider, a chat model reads
    # them), which the team's gates allow only to a configured team that has consented.
    config = load_team(open_object_store(settings), args.team_id)
    if config is None or not config.ai_processing_consent:
        raise CliError(f"regroup: {gate_reason(config, args.team_id, '', '')}")
    batches = team_batches(settings, args.team_id)
    if not batches:
        err(f"regroup: team {args.team_id} has no accepted signals: nothing to regroup")
        print(json.dumps({"batches": 0, "reports_researched": 0, "reports_failed": []}))
        return 0
    # A batch not grouped yet (cut off by a kill, still running, or parked) would be grouped for this team
    # alone, without the rest of the batch: the run's blocking check then fails on the signals left out.
    ungrouped = [
        b
        for b in inbox.unfinished_batches(open_object_store(settings), include_parked=True)
        if batches[0] <= b <= batches[-1]
    ]
    if ungrouped:
        raise CliError(
            f"regroup: {len(ungrouped)} batch(es) among team {args.team_id}'s are not grouped yet "
            f"({', '.join(ungrouped[:3])}{'…' if len(ungrouped) > 3 else ''}): let `signals process` or the daemon "
            "finish them (`signals unpark` a parked one), then regroup"
        )
    instance = open_instance(settings)
    # A killed regroup or `signals process` left its run STARTED holding the grouping pool's one slot:
    # without a daemon nothing else fails it, and this regroup would wait at the pool for good.
    for line in fail_dead_runs(instance):
        err(line)
    definitions = defs()
    add_partitions(instance, signal_batches.build_add_request(batches))
    # Retired batches come back at the end of the set: one run per stretch that a range resolves to in order.
    ranges = key_ordered_ranges(batches, instance.get_dynamic_partitions(SIGNAL_BATCHES))
    err(
        f"re-grouping team {args.team_id}: {len(batches)} batches from {batches[0]} to {batches[-1]}"
        f" in {len(ranges)} run(s)"
    )
    job = definitions.resolve_job_def(regroup_job.name)
    for first, last in ranges:
        try:
            job.execute_in_process(
                instance=instance,
                raise_on_error=True,
                tags={
                    RANGE_START_TAG: first,
                    RANGE_END_TAG: last,
                    **in_process_tags(),
                },
                run_config={
                    **QUIET_RUN_CONFIG,
                    "ops": {
                        "report_assignments": {"config": {"team_ids": [args.team_id], "regroup_through": batches[-1]}}
                    },
                },
            )
        except dg.DagsterExecutionInterruptedError:  # Ctrl-C: Dagster's BaseException escaped as a traceback
            raise KeyboardInterrupt from None
    researched, failed = research_pending(definitions, instance, open_object_store(settings), settings)
    print(json.dumps({"batches": len(batches), "reports_researched": researched, "reports_failed": failed}))
    return 1 if failed else 0


# `status --wait`: what is left of the team's work is parked, so no wait would see it settle.
ONLY_PARKED_LEFT_EXIT = 4


def cmd_status(args, settings: Settings) -> int:
    deadline = time.monotonic() + args.timeout
    while True:
        status = team_status(settings, args.team_id)
        settled = is_settled(status, args.expected_signals)
        parked_only = not settled and only_parked_left(status, args.expected_signals)
        if not args.wait or settled or parked_only or time.monotonic() > deadline:
            break
        time.sleep(2)
    status["settled"] = settled
    status["only_parked_left"] = parked_only
    if args.json:
        print(json.dumps(status, indent=1, default=str))
    else:
        print(
            f"team {args.team_id}: {status['inbox_pending']} pending in inbox, "
            f"{status['unfinished_batches']} unfinished batches, {status['promotions_pending']} promoted reports "
            f"waiting for research, {status['parked']} parked"
        )
        for line in status["unfinished_work"][:20]:
            print(f"  {one_line(line)}")  # a park reason may quote a server's text
        for line in status["stray_folders"][:20]:
            print(f"  {one_line(line)}")  # a folder's name is anyone's text
        quota = status["report_quota"]
        print(f"report rounds today: {quota['admitted_today']} of {quota['limit_per_day']} a day")
        if quota["deferred"]:
            print(f"  deferred to {quota['resumes_at']} (daily limit): {', '.join(quota['deferred'][:20])}")
        print(f"signals: {status['accepted']} accepted, {status['rejected']} rejected, {status['assigned']} assigned")
        if status["rejected"]:
            print(
                "rejected: "
                + ", ".join(f"{n} {reason}" for reason, n in status["rejected_by_reason"].items())
                + (
                    " (" + ", ".join(f"{n} {kind}" for kind, n in status["unsafe_by_kind"].items()) + ")"
                    if status["unsafe_by_kind"]
                    else ""
                )
            )
        print("reports: " + (", ".join(f"{n} {s}" for s, n in status["reports_by_status"].items()) or "none"))
        for row in status["recent_rejections"][:5]:
            quote = f" {one_line(row['quote'])!r}" if row["quote"] else ""
            source = one_line(row["source_id"]) or "?"
            print(f"  rejected {source}: {row['reason']} {one_line(row['detail'])}{quote}".rstrip())
    if args.wait and parked_only:
        parked = status["parked_for_team"]
        units = [
            *(f"batch {batch} ({n} of its signals)" for batch, n in parked["batches"].items()),
            *(f"report round {unit}" for unit in parked["report_rounds"]),
        ]
        err(
            f"status --wait: all that is left of team {args.team_id}'s work is parked: {', '.join(units[:20])}"
            f"{'…' if len(units) > 20 else ''}; `signals unpark KEY` releases it (once its cause is fixed)"
        )
        return ONLY_PARKED_LEFT_EXIT
    if args.wait and not settled:
        expected = (
            f" ({status['accepted'] + status['rejected']} of --expected-signals {args.expected_signals} seen)"
            if args.expected_signals is not None
            else ""
        )
        err(f"status --wait: team {args.team_id}'s work is not settled after --timeout {args.timeout:g} s{expected}")
        return 1
    return 0


def cmd_list_reports(args, settings: Settings) -> int:
    result = list_reports(settings, args.team_id, args.status or "", args.limit, args.signals)
    if args.json:
        print(json.dumps(result, indent=1, default=str))
        return 0
    for r in result["reports"]:
        print(
            f"{r['id']}  {r['status']:<13} {r['priority'] or '--':<2} {r['signal_count']:>3} signals  "
            f"w={r['total_weight']:<5g} {one_line(r['title'])}"
        )
        if r["error"]:
            print(f"    {one_line(r['error'])}")
        if r["merged_into"]:
            print(f"    merged into {r['merged_into']}")
        if r["research"]["repository"]:
            print(f"    research: {r['research']['repository']} {[f['file'] for f in r['research']['findings']][:3]}")
        for s in r.get("signals", []):
            source = f"{s['source_product']}/{s['source_type']} {one_line(s['source_id'])}"
            print(f"    - [{source}] {one_line(s['description'])[:100]}")
    print(f"{result['count']} report(s)")
    return 0


def cmd_cleanup(args, settings: Settings) -> int:
    """Remove everything of the team: store rows, objects and report partitions (see operations.cleanup)."""
    from signals_assets.cli.read_models import store_session
    from signals_assets.operations import cleanup
    from signals_assets.resources.sandbox import remove_ended_runs_work_dirs, run_is_alive
    from signals_assets.sensors.dead_runs import fail_dead_runs

    instance = open_instance(settings)
    # A killed `signals process` or daemon left its runs STARTED: they will never end.
    for line in fail_dead_runs(instance, queued=True):
        err(line)
    busy = cleanup.runs_in_flight(instance)
    if busy:
        raise CliError(
            f"{len(busy)} run(s) queued or in progress (e.g. {busy[0]}): wait until they end, or stop the "
            "daemon, then clean up (a running batch could write the team's signals again)"
        )
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError("cleanup asks for confirmation: run it in a terminal, or pass --yes")
        answer = input(
            f"Delete every signal, report, research log and inbox object of team {args.team_id}"
            f"{'' if args.keep_config else ' and its configuration'}? This cannot be undone. Type the team id: "
        )
        if answer.strip() != str(args.team_id):
            err("cleanup cancelled: nothing deleted")
            return 1
    store = open_object_store(settings)
    with store_session(settings) as db:
        tables = cleanup.team_tables(db)  # refuses before anything is deleted
        signal_ids = cleanup.team_signal_ids(db, args.team_id)
        # Objects first: once they are gone, no re-run of a batch can bring the rows back.
        objects = cleanup.delete_team_objects(
            store, args.team_id, signal_ids, settings.signal_limits.max_signal_bytes, args.keep_config
        )
        rows = cleanup.delete_team_rows(db, args.team_id, tables)
    dagster = cleanup.delete_team_partitions(instance, args.team_id)
    # Research work dirs hold a report and its signals; runs killed in research left theirs (any team's).
    work_dirs = remove_ended_runs_work_dirs(functools.partial(run_is_alive, instance), err)
    print(
        json.dumps(
            {
                "team_id": args.team_id,
                "rows": rows,
                "objects": objects,
                "dagster": dagster,
                "research_work_dirs": len(work_dirs),
            }
        )
    )
    return 0


def cmd_export_report(args, settings: Settings) -> int:
    from signals_assets.cli.read_models import store_session
    from signals_assets.operations.report_transfer import export_report
    from signals_assets.partition_keys import PartitionKeyError, report_team_id

    try:
        team = report_team_id(args.report_id)
    except PartitionKeyError as error:
        raise CliError(str(error)) from None
    with store_session(settings) as db:
        try:
            document = export_report(db, team, args.report_id)
        except LookupError as error:
            raise CliError(str(error)) from None
    text = json.dumps(document, indent=1, default=str) + "\n"
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as error:  # a folder, a symlink loop, a missing folder, no permission
            raise CliError(f"export-report: cannot write {args.output}: {error.strerror or error}") from None
        err(f"report {args.report_id} with {len(document['signals'])} signals written to {args.output}")
    else:
        print(text, end="")
    return 0


def cmd_import_report(args, settings: Settings) -> int:
    """Emit the export's signals for the team; those already emitted, stored or rejected are skipped."""
    from signals_assets.cli.read_models import store_session
    from signals_assets.ingestion import inbox
    from signals_assets.ingestion.emit import emit_signal_result, object_signal_id
    from signals_assets.ingestion.screening import folder_team
    from signals_assets.ingestion.signal_ids import signal_id_for
    from signals_assets.operations.cleanup import team_signal_ids
    from signals_assets.operations.report_transfer import decode_report_file, import_payloads

    path = Path(args.file)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_IMPORT_FILE_BYTES + 1)
    except OSError as error:
        raise CliError(f"import-report: cannot read {path}: {error.strerror or error}") from None
    if len(data) > MAX_IMPORT_FILE_BYTES:
        raise CliError(f"import-report: {path} is over {MAX_IMPORT_FILE_BYTES} bytes")
    payloads = import_payloads(decode_report_file(data), args.team_id, settings.signal_limits)
    store = open_object_store(settings)
    with store_session(settings) as db:
        present = team_signal_ids(db, args.team_id)
    # Emitted but not yet stored: waiting in the inbox or claimed into a batch; the team's objects only
    # (another team's object with an original id is that team's signal), and those from before the folders.
    pending = [key[len(inbox.INBOX) :] for key in store.list(inbox.INBOX)]
    pending += [key[len(inbox.CLAIMED) :].partition("/")[2] for key in store.list(inbox.CLAIMED)]
    present |= {object_signal_id(name) for name in pending if folder_team(name) in (args.team_id, None)}
    emitted, skipped, gated = 0, 0, {}
    for original_id, payload in payloads:
        # the original id: a report exported from this very team is already here
        if {original_id, signal_id_for(args.team_id, payload["idempotency_key"])} & present:
            skipped += 1
            continue
        result = emit_signal_result(**payload, store=store, settings=settings)
        if result.signal_id:
            emitted += 1
            present |= {original_id, result.signal_id}  # the file may hold a signal, or a key, twice
        else:
            gated[result.gated_reason] = gated.get(result.gated_reason, 0) + 1
    print(json.dumps({"emitted": emitted, "already_present": skipped, "not_emitted": gated}))
    if emitted:
        err("the signals are in the inbox: the daemon groups them, or run `signals process`")
    return 3 if gated else 0
