"""Fairness across teams: daily report-round limits deferred, never dropped; fair order of rounds."""

import json
import os
import time
from datetime import datetime, timezone

import dagster as dg

from signals_assets.cli.main import main
from signals_assets.reports import promotions, quotas
from signals_assets.sensors.report_promotion import promotion_work

from conftest import CARD_DECLINED, PASSWORD_RESET, queued_run, zendesk_extra

DAY = 86400.0


def run(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_a_team_over_its_daily_limit_is_deferred_visibly_then_researched_the_next_day(
    capsys, signals_home, object_store, demo_repository, tmp_path
):
    from signals_assets.cli.commands import research_pending
    from signals_assets.definitions import defs
    from signals_assets.ingestion.teams import TeamConfig, save_team
    from signals_assets.settings import load_settings

    save_team(
        object_store,
        TeamConfig(team_id=1, ai_processing_consent=True, repositories=[str(demo_repository)], max_reports_per_day=1),
    )
    path = tmp_path / "signals.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {"source_product": "zendesk", "source_type": "ticket", "source_id": str(i), "description": text}
                | {"extra": zendesk_extra(i)}
            )
            + "\n"
            for i, text in enumerate(CARD_DECLINED + PASSWORD_RESET)
        )
    )
    assert run(capsys, "emit-file", str(path), "--team-id", "1")[0] == 0

    code, out = run(capsys, "process")
    summary = json.loads(out)
    assert code == 1 and summary["reports_researched"] == 1
    assert [line for line in summary["unfinished"] if "research not done" in line]  # kept, not dropped

    code, out = run(capsys, "status", "--team-id", "1", "--json")
    status = json.loads(out)
    quota = status["report_quota"]
    assert (quota["limit_per_day"], quota["admitted_today"], len(quota["deferred"])) == (1, 1, 1)
    assert quota["resumes_at"].endswith("T00:00:00+00:00") and not status["settled"]
    assert status["reports_by_status"] == {"candidate": 1, "ready": 1}
    text = run(capsys, "status", "--team-id", "1")[1]
    assert f"deferred to {quota['resumes_at']} (daily limit): {quota['deferred'][0]}" in text

    # the next day (a moved clock): the deferred round is admitted and researched
    settings = load_settings()
    with dg.DagsterInstance.get() as instance:
        researched, failed = research_pending(defs(), instance, object_store, settings, now=time.time() + DAY)
    assert (researched, failed) == (1, [])
    code, out = run(capsys, "status", "--team-id", "1", "--json")
    status = json.loads(out)
    assert status["reports_by_status"] == {"ready": 2} and status["report_quota"]["deferred"] == []
    assert status["settled"]


def promotion(team: int, report: str, at: float) -> dict:
    return {"report_id": f"r{team}-{report:0>16}", "team_id": team, "round": 1, "batch_key": "b", "promoted_at": at}


def test_rounds_run_round_robin_across_teams_and_queue_priority_falls_with_a_teams_backlog():
    burst = [promotion(1, f"{i:x}", 100.0 + i) for i in range(5)]
    late = [promotion(2, "a", 200.0), promotion(2, "b", 201.0)]
    order = [p["report_id"] for p in quotas.fair_order(burst + late)]
    assert order[:4] == [burst[0]["report_id"], late[0]["report_id"], burst[1]["report_id"], late[1]["report_id"]]
    # team 1 has three rounds queued already: team 2's first run is ahead of team 1's next ones
    in_flight = [promotions.promotion_unit(p["report_id"], 1) for p in burst[:3]]
    assert quotas.queue_priorities([1, 2, 1, 2], in_flight) == [-3, 0, -4, -1]


def test_deferred_rounds_are_admitted_oldest_first_and_old_ledgers_are_forgotten(object_store):
    now = time.time()
    for p in [promotion(3, f"{i:x}", now - 100 + i) for i in range(3)]:
        object_store.put(promotions.promotion_key(p["report_id"], 1), json.dumps(p).encode())
    with dg.instance_for_test() as instance:
        today = promotion_work(instance, object_store, 3, 0, now=now, max_reports_per_team_day=2)
        assert [p["report_id"][-1] for p, _ in today.to_run] == ["0", "1"] and len(today.deferred) == 1
        again = promotion_work(instance, object_store, 3, 0, now=now, max_reports_per_team_day=2)
        assert len(again.to_run) == 2 and again.deferred == today.deferred  # retries never count twice
        tomorrow = promotion_work(instance, object_store, 3, 0, now=now + DAY, max_reports_per_team_day=2)
        assert [p["report_id"][-1] for p, _ in tomorrow.to_run] == ["0", "1", "2"] and tomorrow.deferred == []
    assert quotas.forget_ledgers_before(object_store, now + 3 * DAY) == 3
    assert object_store.list(quotas.QUOTA) == []


def claimed_batches(store) -> dict[str, list[str]]:
    """Every claimed batch's object names (manifests), by batch key."""
    from signals_assets.ingestion import inbox

    keys = [k for k in store.list(inbox.BATCHES) if k.endswith("/manifest.json")]
    return {k.split("/")[1]: json.loads(store.get(k))["objects"] for k in keys}


def test_through_the_daemon_a_burst_delays_another_teams_signals_by_at_most_one_batch(
    signals_home, object_store, demo_repository, tmp_path, request
):
    from signals_assets.ingestion.teams import TeamConfig, save_team
    from signals_assets.partition_keys import batch_key

    from conftest import emit_texts
    from test_daemon_e2e import kill_group, start_daemon, wait_for_started_batch_run, write_instance_config

    for team in (1, 2):
        save_team(object_store, TeamConfig(team_id=team, ai_processing_consent=True))
    dagster_home = signals_home / "dagster_home"
    write_instance_config(dagster_home, "sqlite", request)
    env = {**os.environ, "SIGNALS_SENSOR_INTERVAL_SECONDS": "2", "SIGNALS_BATCH_MAX_SIGNALS": "50"}
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.get_runs(limit=1)
    emit_texts(object_store, CARD_DECLINED * 100, team_id=1)  # team 1's burst: six batches' worth

    daemon = start_daemon(env, tmp_path / "daemon.log")
    try:
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            wait_for_started_batch_run(instance)
        emitted_at = batch_key(datetime.now(timezone.utc))
        emit_texts(object_store, PASSWORD_RESET, team_id=2, start=1000)
        deadline = time.monotonic() + 480
        while not any(n.startswith("2/") for names in claimed_batches(object_store).values() for n in names):
            assert time.monotonic() < deadline, (tmp_path / "daemon.log").read_text()[-3000:]
            time.sleep(1)
    finally:
        kill_group(daemon)
    batches = claimed_batches(object_store)
    after = [key for key in sorted(batches) if key > emitted_at]
    with_team_2 = [key for key in after if any(n.startswith("2/") for n in batches[key])]
    assert with_team_2 == after[:1] or with_team_2 == after[1:2], batches.keys()
    assert sum(n.startswith("2/") for n in batches[with_team_2[0]]) == 3
    assert object_store.list("inbox/1/")  # team 1's burst was still waiting: team 2 did not just come after it


def test_rounds_promoted_while_their_teams_report_run_is_queued_share_its_next_run(object_store):
    """Report runs go one at a time. A team's rounds promoted while one of its report runs waits in the
    queue are held, not queued as a run each behind it (each run is a new process: a kill-and-restart
    trial's backlog took 14 report runs); another team's rounds are not held; once the queued run
    starts, the held rounds go in one run."""
    from signals_assets.assets.reports import ROUNDS_TAG
    from signals_assets.jobs import TEAM_TAG
    from signals_assets.resources.object_store import ObjectStoreResource
    from signals_assets.sensors.report_promotion import build_report_promotion_sensor

    team_1 = [f"r1-{i:016x}" for i in range(3)]
    team_2 = f"r2-{0:016x}"
    promotions.record_promotions(
        object_store, "b20261130T000000000000Z", [{"report_id": r, "team_id": 1, "round": 1} for r in team_1]
    )
    sensor = build_report_promotion_sensor()
    resources = {"object_store": ObjectStoreResource(root=str(object_store.root))}
    with dg.instance_for_test() as instance:

        def tick():
            return sensor(dg.build_sensor_context(instance=instance, resources=resources))

        queued = queued_run(instance, "report_job", {TEAM_TAG: "1"})
        assert "3 held for their team's next run (one of its runs is queued)" in tick().skip_message
        promotions.record_promotions(
            object_store, "b20261130T000001000000Z", [{"report_id": team_2, "team_id": 2, "round": 1}]
        )
        [team_2_run] = tick().run_requests
        assert team_2_run.tags[TEAM_TAG] == "2" and team_2_run.partition_key == team_2

        instance.handle_run_event(
            queued.run_id, dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name="report_job")
        )
        [team_1_run] = [r for r in tick().run_requests if r.tags[TEAM_TAG] == "1"]
        assert sorted(team_1_run.tags[ROUNDS_TAG].split()) == [f"{r}-round1" for r in team_1]
