import math

from signals_assets import lifecycle as lc
from signals_assets.grouping import BatchSignal, Candidate, plan_batch, report_id_for
from signals_assets.lifecycle import ReportState


def unit(*values):
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def signal(sid, vector, weight=0.5, team=1):
    return BatchSignal(sid, team, f"description of {sid}. More text.", weight, vector)


def test_similar_signals_of_one_batch_share_a_new_report_and_promote_it():
    plan = plan_batch([signal("a", unit(1, 0, 0)), signal("b", unit(0.95, 0.05, 0)), signal("c", unit(0, 0, 1))], {}, {})
    a, b, c = plan.assignments
    assert a.decision == "created" and a.report_id == report_id_for(1, "a")
    assert b.decision == "joined" and b.report_id == a.report_id and b.matched_signal_id == "a"
    assert c.decision == "created" and c.report_id != a.report_id
    assert [(e.report_id, e.event) for e in plan.events] == [
        (a.report_id, "created"), (a.report_id, "promoted"), (c.report_id, "created")]
    assert plan.promotions[0].research_round == 1


def test_signals_of_other_teams_never_match():
    plan = plan_batch([signal("a", unit(1, 0), team=1), signal("b", unit(1, 0), team=2)], {}, {})
    assert plan.assignments[0].report_id != plan.assignments[1].report_id


def test_stored_candidate_above_threshold_is_joined():
    existing = "r1-00000000000000aa"
    states = {existing: ReportState(existing, lc.POTENTIAL, signal_count=1, total_weight=0.5)}
    plan = plan_batch([signal("n", unit(1, 0))], {"n": [Candidate("old", existing, 0.9)]}, states)
    assert plan.assignments[0].report_id == existing
    assert plan.promotions[0].report_id == existing


def test_below_threshold_starts_a_new_report():
    existing = "r1-00000000000000aa"
    states = {existing: ReportState(existing, lc.POTENTIAL, 1, 0.5)}
    plan = plan_batch([signal("n", unit(1, 0))], {"n": [Candidate("old", existing, 0.3)]}, states)
    assert plan.assignments[0].decision == "created"


def test_deleted_report_keeps_the_signal_as_deleted_and_resolved_opens_a_recurrence():
    gone, done = "r1-00000000000000aa", "r1-00000000000000bb"
    states = {gone: ReportState(gone, lc.DELETED, 2, 1.0), done: ReportState(done, lc.RESOLVED, 2, 1.0)}
    plan = plan_batch(
        [signal("x", unit(1, 0)), signal("y", unit(0, 1))],
        {"x": [Candidate("o1", gone, 0.95)], "y": [Candidate("o2", done, 0.95)]},
        states,
    )
    x, y = plan.assignments
    assert x.deleted and x.report_id == gone and x.decision == "deleted_report"
    assert y.decision == "recurrence" and y.report_id == report_id_for(1, "y")
    assert plan.events[0].detail == f"recurrence_of:{done}"
    assert not any(e.report_id == gone for e in plan.events)


def test_decisions_are_deterministic():
    batch = [signal(str(i), unit(1, i / 10, 0)) for i in range(6)]
    assert plan_batch(batch, {}, {}).assignments == plan_batch(batch, {}, {}).assignments
