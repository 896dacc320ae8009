"""`signals` command line: emit signals, process them without a daemon, inspect teams and reports."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from signals_assets.objects import open_object_store
from signals_assets.settings import Settings, load_settings


def _store_session(settings: Settings):
    """The store with schema and SQL model views in place (the CLI may run before any job)."""
    from contextlib import contextmanager

    from signals_assets.clickhouse import open_chdb, open_server
    from signals_assets.sql_models import load_models, materialize_sql

    @contextmanager
    def session():
        if settings.clickhouse_url:
            opener = open_server(
                settings.clickhouse_url, settings.clickhouse_database, settings.clickhouse_user,
                os.environ.get("SIGNALS_CLICKHOUSE_PASSWORD", ""), settings.clickhouse_secure,
            )
        else:
            opener = open_chdb(settings.clickhouse_path, settings.clickhouse_database, log=_err)
        with opener as db:
            db.apply_schema(settings.vector_index_dimensions)
            for model in load_models():
                for statement in materialize_sql(model):
                    db.command(statement)
            yield db

    return session()


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _progress(done: int, total: int, label: str) -> None:
    if not sys.stderr.isatty() and done not in (total,) and done % max(1, total // 10):
        return
    width = 30
    filled = int(width * done / total) if total else width
    end = "\n" if done >= total else ""
    print(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end=end, file=sys.stderr, flush=True)


# ---- emit ------------------------------------------------------------------------------------

def cmd_emit(args, settings: Settings) -> int:
    from signals_assets.facade import emit_signal_result

    result = emit_signal_result(
        team_id=args.team_id, source_product=args.source_product, source_type=args.source_type,
        source_id=args.source_id, description=args.description, weight=args.weight,
        extra=json.loads(args.extra) if args.extra else {}, idempotency_key=args.idempotency_key,
        store=open_object_store(settings),
    )
    if result.signal_id is None:
        _err(f"not emitted: {result.gated_reason}")
        return 3
    print(result.signal_id)
    return 0


def _read_jsonl(path: Path, team_id: int) -> list[dict]:
    from signals_assets.validation import SignalValidationError, validate_signal

    payloads, errors = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            payload = json.loads(line)
            if not isinstance(payload, dict):
                raise SignalValidationError("line", "must be a JSON object")
            payload.setdefault("team_id", team_id)
            if payload["team_id"] != team_id:
                raise SignalValidationError("team_id", f"must be {team_id} (--team-id), got {payload['team_id']!r}")
            validate_signal(payload)
            payloads.append(payload)
        except (json.JSONDecodeError, SignalValidationError) as error:
            errors.append(f"{path}:{number}: {error}")
    if errors:
        raise SystemExit("nothing emitted; invalid lines:\n" + "\n".join(errors[:20])
                         + (f"\n… and {len(errors) - 20} more" if len(errors) > 20 else ""))
    return payloads


def cmd_emit_file(args, settings: Settings) -> int:
    from signals_assets.facade import emit_signal_result

    payloads = _read_jsonl(Path(args.file), args.team_id)
    store = open_object_store(settings)
    emitted, gated = 0, {}
    for index, payload in enumerate(payloads, start=1):
        result = emit_signal_result(**payload, store=store)
        if result.signal_id:
            emitted += 1
        else:
            gated[result.gated_reason] = gated.get(result.gated_reason, 0) + 1
        _progress(index, len(payloads), "emitting")
    print(json.dumps({"emitted": emitted, "not_emitted": gated}))
    return 0 if not gated else 3


# ---- teams -----------------------------------------------------------------------------------

def cmd_teams_set(args, settings: Settings) -> int:
    from signals_assets.teams import TeamConfig, load_team, save_team

    store = open_object_store(settings)
    current = load_team(store, args.team_id) or TeamConfig(team_id=args.team_id)
    repositories = [str(Path(p).expanduser().resolve()) for p in args.repo] if args.repo else current.repositories
    missing = [p for p in repositories if not Path(p).is_dir()]
    if missing:
        raise SystemExit(f"--repo: not a folder: {', '.join(missing)}")
    config = TeamConfig(
        team_id=args.team_id,
        ai_processing_consent=current.ai_processing_consent if args.consent is None else args.consent,
        enabled_sources=args.enable if args.enable else current.enabled_sources,
        repositories=repositories,
    )
    save_team(store, config)
    print(json.dumps(config.__dict__, indent=1))
    return 0


def cmd_teams_show(args, settings: Settings) -> int:
    from signals_assets.teams import load_team

    config = load_team(open_object_store(settings), args.team_id)
    if config is None:
        raise SystemExit(f"team {args.team_id} is not configured (run: signals teams set {args.team_id} --consent)")
    print(json.dumps(config.__dict__, indent=1))
    return 0


# ---- process ---------------------------------------------------------------------------------

LOCAL_INSTANCE_CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "dagster.local.yaml"


def ensure_dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME, by default beside the data, with the local instance settings when it has none."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.signals_home / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists() and LOCAL_INSTANCE_CONFIG.exists():
        shutil.copy(LOCAL_INSTANCE_CONFIG, home / "dagster.yaml")
    return home


# Runs still log everything to the instance; the terminal gets warnings and the progress lines.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def in_process_tags(run_key: str) -> dict:
    """Tags of a run `signals process` executes itself: no Dagster retry will come for it (the
    next `signals process` or the sensors make the next attempt), and its process can be found dead."""
    import socket

    from signals_assets.sensors.dead_runs import HOST_TAG, PID_TAG

    return {"dagster/run_key": run_key, "dagster/max_retries": "0", HOST_TAG: socket.gethostname(),
            PID_TAG: str(os.getpid())}


def cmd_process(args, settings: Settings) -> int:
    """Claim what is pending, then resume every unfinished batch (key order) and report round with
    the functions the sensors use; exit 1 and name what is left while anything is unfinished."""
    ensure_dagster_home(settings)
    import dagster as dg

    from signals_assets import inbox
    from signals_assets.definitions import defs
    from signals_assets.sensors.dead_runs import fail_dead_runs
    from signals_assets.sensors.signal_inbox import batch_work

    store = open_object_store(settings)
    instance = dg.DagsterInstance.get()
    for line in fail_dead_runs(instance):  # runs a killed `signals process` or daemon left STARTED
        _err(line)
    inbox.claim_all(store, settings.batch_max_signals)
    definitions = defs()
    batch_job = definitions.resolve_job_def("signal_batch_job")
    started = time.monotonic()
    # No back-off and no waiting for the daemon's retries: the operator asked for an attempt now.
    to_run = batch_work(instance, store, settings.max_attempts, backoff_seconds=0, daemon_retries=False).to_run
    instance.add_dynamic_partitions("signal_batches", [batch for batch, _ in to_run])
    grouped = 0
    for index, (batch, run_key) in enumerate(to_run, start=1):
        _err(f"batch {index}/{len(to_run)} {batch}: buffering, embedding, grouping")
        result = batch_job.execute_in_process(
            partition_key=batch, instance=instance, tags=in_process_tags(run_key), raise_on_error=False,
            run_config=QUIET_RUN_CONFIG,
        )
        if not result.success:
            _err(f"batch {batch}: run {result.run_id} failed; later batches wait for it (key order)")
            break
        grouped += 1
    researched, failed = research_pending(definitions, instance, store, settings.max_attempts)
    left = unfinished_work(store)
    for line in left:
        _err(f"unfinished: {line}")
    print(json.dumps({
        "batches": grouped, "reports_researched": researched, "reports_failed": failed, "unfinished": left,
        "seconds": round(time.monotonic() - started, 1),
    }))
    return 1 if failed or left else 0


def research_pending(definitions, instance, store, max_attempts: int) -> tuple[int, list[str]]:
    """One report run per pending promotion (as the promotion sensor decides, without back-off);
    the number of rounds researched and the report ids whose run failed."""
    from signals_assets.sensors.report_promotion import promotion_work, report_run_request

    to_run = promotion_work(instance, store, max_attempts, backoff_seconds=0, daemon_retries=False).to_run
    instance.add_dynamic_partitions("reports", sorted({p["report_id"] for p, _ in to_run}))
    report_job = definitions.resolve_job_def("report_job")
    failed = []
    for index, (promotion, run_key) in enumerate(to_run, start=1):
        result = report_job.execute_in_process(
            partition_key=promotion["report_id"], instance=instance, raise_on_error=False,
            tags={**report_run_request(promotion, run_key).tags, **in_process_tags(run_key)}, run_config=QUIET_RUN_CONFIG,
        )
        if not result.success:
            failed.append(promotion["report_id"])
        _progress(index, len(to_run), "researching reports")
    return len(to_run) - len(failed), failed


def unfinished_work(store) -> list[str]:
    """One line per batch or report round not done yet, parked ones with their reason."""
    from signals_assets import inbox, promotions

    lines = []
    for progress in inbox.batch_progress(store):
        if progress.parked is not None:
            lines.append(f"batch {progress.batch}: parked ({progress.parked['reason']}); "
                         f"`signals unpark {progress.batch}`")
        elif not progress.finished:
            lines.append(f"batch {progress.batch}: {progress.next_stage} not done")
    for promotion in promotions.all_promotions(store):
        unit = promotions.promotion_unit(promotion["report_id"], promotion["round"])
        lines.append(f"report {promotion['report_id']} round {promotion['round']}: "
                     + (f"parked ({promotion['parked']}); `signals unpark {unit}`" if promotion.get("parked")
                        else "promoted, research not done"))
    return lines


def cmd_unpark(args, settings: Settings) -> int:
    """Give a parked batch or report round a fresh attempt budget; the sensors (or `signals process`) resume it."""
    from signals_assets import inbox, promotions

    store = open_object_store(settings)
    match = [p for p in promotions.all_promotions(store)
             if promotions.promotion_unit(p["report_id"], p["round"]) == args.key]
    if match:
        record = promotions.unpark_promotion(store, match[0])
    else:
        record = inbox.unpark_batch(store, args.key)
    print(json.dumps({"unparked": args.key, "was": record}))
    return 0


def cmd_regroup(args, settings: Settings) -> int:
    """Re-group every batch holding the team's signals, in order, then research new promotions."""
    ensure_dagster_home(settings)
    import dagster as dg

    from signals_assets.definitions import defs

    with _store_session(settings) as db:
        batches = [r["batch_key"] for r in db.query(
            "SELECT DISTINCT batch_key FROM signals WHERE team_id = {team} ORDER BY batch_key", {"team": args.team_id})]
    if not batches:
        print(json.dumps({"batches": 0, "reports_researched": 0, "reports_failed": []}))
        return 0
    instance = dg.DagsterInstance.get()
    definitions = defs()
    instance.add_dynamic_partitions("signal_batches", batches)
    _err(f"re-grouping team {args.team_id}: {len(batches)} batches from {batches[0]} to {batches[-1]}")
    definitions.resolve_job_def("regroup_job").execute_in_process(
        instance=instance, raise_on_error=True,
        tags={"dagster/asset_partition_range_start": batches[0], "dagster/asset_partition_range_end": batches[-1]},
        run_config={**QUIET_RUN_CONFIG, "ops": {"report_assignments": {"config": {"team_ids": [args.team_id]}}}},
    )
    researched, failed = research_pending(definitions, instance, open_object_store(settings), settings.max_attempts)
    print(json.dumps({"batches": len(batches), "reports_researched": researched, "reports_failed": failed}))
    return 1 if failed else 0


# ---- status and reports ----------------------------------------------------------------------

_STATUS_SQL = """
SELECT
    (SELECT count() FROM signals WHERE team_id = {team}) AS accepted,
    (SELECT count() FROM rejected_signals WHERE team_id = {team}) AS rejected,
    (SELECT uniqExact(signal_id) FROM report_assignments WHERE team_id = {team}) AS assigned,
    (SELECT count() FROM reports WHERE team_id = {team}) AS reports
"""


def team_status(settings: Settings, team_id: int) -> dict:
    from signals_assets import inbox, promotions

    store = open_object_store(settings)
    progress = inbox.batch_progress(store)
    pending_promotions = promotions.all_promotions(store)
    with _store_session(settings) as db:
        counts = db.query(_STATUS_SQL, {"team": team_id})[0]
        by_status = {r["status"]: int(r["n"]) for r in db.query(
            "SELECT status, count() AS n FROM reports WHERE team_id = {team} GROUP BY status ORDER BY status",
            {"team": team_id})}
        rejected = db.query(
            "SELECT reason, detail, quote, source_id FROM rejected_signals WHERE team_id = {team} "
            "ORDER BY rejected_at DESC, signal_id LIMIT 20", {"team": team_id})
        by_reason = {r["reason"]: int(r["n"]) for r in db.query(
            "SELECT reason, count() AS n FROM rejected_signals WHERE team_id = {team} GROUP BY reason ORDER BY reason",
            {"team": team_id})}
        unsafe_by_kind = {r["kind"]: int(r["n"]) for r in db.query(
            "SELECT detail AS kind, count() AS n FROM rejected_signals WHERE team_id = {team} AND reason = 'unsafe' "
            "GROUP BY detail ORDER BY detail", {"team": team_id})}
    return {
        "team_id": team_id,
        "inbox_pending": inbox.pending_inbox_count(store),
        "unfinished_batches": sum(1 for p in progress if not p.finished and p.parked is None),
        "parked": sum(1 for p in progress if p.parked is not None) + sum(1 for p in pending_promotions if p.get("parked")),
        "promotions_pending": sum(1 for p in pending_promotions if not p.get("parked")),
        "unfinished_work": unfinished_work(store),
        **{k: int(v) for k, v in counts.items()},
        "reports_by_status": by_status,
        "rejected_by_reason": by_reason,
        "unsafe_by_kind": unsafe_by_kind,
        "recent_rejections": rejected,
    }


def is_settled(status: dict, expected_signals: int | None) -> bool:
    in_flight = sum(status["reports_by_status"].get(s, 0) for s in ("candidate", "in_progress"))
    seen = status["accepted"] + status["rejected"]
    return (
        status["inbox_pending"] == 0 and status["unfinished_batches"] == 0 and status["promotions_pending"] == 0
        and in_flight == 0
        and status["assigned"] >= status["accepted"] and (expected_signals is None or seen >= expected_signals)
    )


def cmd_status(args, settings: Settings) -> int:
    deadline = time.monotonic() + args.timeout
    while True:
        status = team_status(settings, args.team_id)
        settled = is_settled(status, args.expected_signals)
        if not args.wait or settled or time.monotonic() > deadline:
            break
        time.sleep(2)
    status["settled"] = settled
    if args.json:
        print(json.dumps(status, indent=1, default=str))
    else:
        print(f"team {args.team_id}: {status['inbox_pending']} pending in inbox, "
              f"{status['unfinished_batches']} unfinished batches, {status['promotions_pending']} promoted reports "
              f"waiting for research, {status['parked']} parked")
        for line in status["unfinished_work"][:20]:
            print(f"  {line}")
        print(f"signals: {status['accepted']} accepted, {status['rejected']} rejected, {status['assigned']} assigned")
        if status["rejected"]:
            print("rejected: " + ", ".join(f"{n} {reason}" for reason, n in status["rejected_by_reason"].items())
                  + (" (" + ", ".join(f"{n} {kind}" for kind, n in status["unsafe_by_kind"].items()) + ")"
                     if status["unsafe_by_kind"] else ""))
        print("reports: " + (", ".join(f"{n} {s}" for s, n in status["reports_by_status"].items()) or "none"))
        for row in status["recent_rejections"][:5]:
            quote = f" {' '.join(row['quote'].split())!r}" if row["quote"] else ""
            print(f"  rejected {row['source_id'] or '?'}: {row['reason']} {row['detail']}{quote}".rstrip())
    return 0 if settled or not args.wait else 1


_REPORTS_SQL = """
SELECT report_id AS id, status, title, summary, signal_count, total_weight, research_status, sandbox,
       repository, findings, log_key,
       priority, actionability, actionability_reason, safety, safety_kind, safety_quote, error
FROM reports WHERE team_id = {team} AND ({status} = '' OR status = {status})
ORDER BY total_weight DESC, signal_count DESC, id LIMIT {limit}
"""


def list_reports(settings: Settings, team_id: int, status: str = "", limit: int = 100, with_signals: bool = False) -> dict:
    with _store_session(settings) as db:
        rows = db.query(_REPORTS_SQL, {"team": team_id, "status": status, "limit": limit})
        signals: dict[str, list[dict]] = {}
        if with_signals and rows:
            for s in db.query(
                "SELECT report_id, signal_id, source_id, source_product, source_type, description FROM report_signals "
                "WHERE team_id = {team} AND report_id IN {ids} ORDER BY assigned_at, signal_id",
                {"team": team_id, "ids": [r["id"] for r in rows]},
            ):
                signals.setdefault(s.pop("report_id"), []).append(s)
    reports = []
    for row in rows:
        report = {k: row[k] for k in ("id", "status", "title", "summary", "signal_count", "total_weight", "priority",
                                      "actionability", "actionability_reason", "error")}
        report["safety"] = {"verdict": row["safety"], "kind": row["safety_kind"], "quote": row["safety_quote"]}
        report["research"] = {
            "status": row["research_status"], "sandbox": row["sandbox"], "repository": row["repository"],
            "findings": json.loads(row["findings"] or "[]"), "log_key": row["log_key"],
        }
        if with_signals:
            report["signals"] = signals.get(row["id"], [])
        reports.append(report)
    return {"reports": reports, "count": len(reports)}


def cmd_list_reports(args, settings: Settings) -> int:
    result = list_reports(settings, args.team_id, args.status or "", args.limit, args.signals)
    if args.json:
        print(json.dumps(result, indent=1, default=str))
        return 0
    for r in result["reports"]:
        print(f"{r['id']}  {r['status']:<13} {r['priority'] or '--':<2} {r['signal_count']:>3} signals  "
              f"w={r['total_weight']:<5g} {r['title']}")
        if r["error"]:
            print(f"    {r['error']}")
        if r["research"]["repository"]:
            print(f"    research: {r['research']['repository']} {[f['file'] for f in r['research']['findings']][:3]}")
        for s in r.get("signals", []):
            print(f"    - [{s['source_product']}/{s['source_type']} {s['source_id']}] {s['description'][:100]}")
    print(f"{result['count']} report(s)")
    return 0


# ---- parser ----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="signals", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    emit = sub.add_parser("emit", help="emit one signal")
    emit.add_argument("--team-id", type=int, required=True)
    emit.add_argument("--source-product", required=True)
    emit.add_argument("--source-type", required=True)
    emit.add_argument("--source-id", required=True)
    emit.add_argument("--description", required=True)
    emit.add_argument("--weight", type=float, default=0.5)
    emit.add_argument("--extra", help="JSON object of source-specific fields")
    emit.add_argument("--idempotency-key")
    emit.set_defaults(handler=cmd_emit)

    emit_file = sub.add_parser("emit-file", help="emit every line of a JSONL file (all validated first)")
    emit_file.add_argument("file")
    emit_file.add_argument("--team-id", type=int, required=True)
    emit_file.set_defaults(handler=cmd_emit_file)

    process = sub.add_parser("process", help="claim pending signals and run the whole pipeline now, in-process")
    process.set_defaults(handler=cmd_process)

    regroup = sub.add_parser("regroup", help="re-group all of a team's signals (after a provider, model or "
                             "parameter change) and research the reports it promotes")
    regroup.add_argument("--team-id", type=int, required=True)
    regroup.set_defaults(handler=cmd_regroup)

    status = sub.add_parser("status", help="pipeline status for a team")
    status.add_argument("--team-id", type=int, required=True)
    status.add_argument("--wait", action="store_true", help="wait until nothing is in flight")
    status.add_argument("--expected-signals", type=int)
    status.add_argument("--timeout", type=float, default=600)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)

    unpark = sub.add_parser("unpark", help="retry a parked batch or report round (see `status`)")
    unpark.add_argument("key", help="batch key (b2026…Z) or report round (r<team>-<id>-round<N>)")
    unpark.set_defaults(handler=cmd_unpark)

    reports = sub.add_parser("list-reports", help="list a team's reports")
    reports.add_argument("--team-id", type=int, required=True)
    reports.add_argument("--status")
    reports.add_argument("--signals", action="store_true")
    reports.add_argument("--json", action="store_true")
    reports.add_argument("--limit", type=int, default=100)
    reports.set_defaults(handler=cmd_list_reports)

    teams = sub.add_parser("teams", help="team configuration")
    teams_sub = teams.add_subparsers(dest="teams_command", required=True)
    teams_set = teams_sub.add_parser("set", help="create or update a team")
    teams_set.add_argument("team_id", type=int)
    teams_set.add_argument("--repo", action="append", default=[], help="code repository folder (repeatable)")
    teams_set.add_argument("--consent", dest="consent", action="store_true", default=None)
    teams_set.add_argument("--no-consent", dest="consent", action="store_false")
    teams_set.add_argument("--enable", action="append", default=[], metavar="PRODUCT/TYPE")
    teams_set.set_defaults(handler=cmd_teams_set)
    teams_show = teams_sub.add_parser("show", help="show a team")
    teams_show.add_argument("team_id", type=int)
    teams_show.set_defaults(handler=cmd_teams_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args, load_settings())
    except ValueError as error:  # validation errors carry the field and the rule
        _err(f"error: {error}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
