"""Fairness across teams: daily report-round limits deferred, never dropped; fair order of rounds."""

import json
import time

import dagster as dg

from signals_assets.cli.main import main
from signals_assets.reports import promotions, quotas
from signals_assets.sensors.report_promotion import promotion_work

from conftest import CARD_DECLINED, PASSWORD_RESET, zendesk_extra

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
