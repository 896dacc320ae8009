import math

import numpy as np
import pytest

from signals_assets.grouping.engine import (
    BatchSignal,
    Candidate,
    MatchDecision,
    ReportStats,
    candidate_reports,
    plan_batch,
    report_id_for,
)
from signals_assets.reports import lifecycle as lc
from signals_assets.reports.lifecycle import ReportState


def unit(*values):
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def signal(sid, vector, weight=0.5, team=1, probes=()):
    return BatchSignal(sid, team, f"description of {sid}. More text.", weight, vector, tuple(probes))


def threshold(limit=0.675):
    def decide(signal, reports):
        best = reports[0]
        if best.best_similarity >= limit:
            return MatchDecision(best.report_id, best.best_signal_id, "similar")
        return MatchDecision(None, reason="nothing similar")

    return decide


def existing(report_id, vector, count=1, status=lc.POTENTIAL, weight=0.5):
    stats = ReportStats(np.asarray(vector) * count, count, f"title of {report_id}")
    return stats, ReportState(report_id, status, count, weight * count)


def test_similar_signals_of_one_batch_share_a_new_report_and_promote_it():
    plan = plan_batch(
        [signal("a", unit(1, 0, 0)), signal("b", unit(0.95, 0.05, 0)), signal("c", unit(0, 0, 1))],
        {},
        {},
        {},
        threshold(),
    )
    a, b, c = plan.assignments
    assert a.decision == "created" and a.report_id == report_id_for(1, "a")
    assert b.decision == "joined" and b.report_id == a.report_id and b.matched_signal_id == "a"
    assert c.decision == "created" and c.report_id != a.report_id
    assert [(e.report_id, e.event) for e in plan.events] == [
        (a.report_id, "created"),
        (a.report_id, "promoted"),
        (c.report_id, "created"),
    ]
    assert plan.promotions[0].research_round == 1


def test_signals_of_other_teams_never_match():
    plan = plan_batch([signal("a", unit(1, 0), team=1), signal("b", unit(1, 0), team=2)], {}, {}, {}, threshold())
    assert plan.assignments[0].report_id != plan.assignments[1].report_id


def test_interleaved_teams_each_join_their_own_earlier_signals_of_the_batch():
    signals = [
        signal("a1", unit(1, 0), team=1),
        signal("b1", unit(1, 0.01), team=2),
        signal("a2", unit(1, 0.02), team=1),
        signal("b2", unit(0, 1), team=2),
        signal("b3", unit(0.01, 1), team=2),
        signal("a3", unit(0.02, 1), team=1),
    ]
    plan = plan_batch(signals, {}, {}, {}, threshold())
    report = {a.signal_id: a.report_id for a in plan.assignments}
    matched = {a.signal_id: a.matched_signal_id for a in plan.assignments}
    assert report["a2"] == report["a1"] == report_id_for(1, "a1") and matched["a2"] == "a1"
    assert report["b3"] == report["b2"] == report_id_for(2, "b2") and matched["b3"] == "b2"
    assert report["b1"] == report_id_for(2, "b1") and report["a3"] == report_id_for(1, "a3")


def test_a_deleted_signal_is_no_local_candidate_for_later_ones():
    gone = "r1-00000000000000aa"
    gone_stats, gone_state = existing(gone, unit(1, 0), 2, lc.DELETED)
    plan = plan_batch(
        [signal("x", unit(1, 0)), signal("y", unit(1, 0))],
        {"x": [Candidate("o1", gone, 0.95)]},
        {gone: gone_stats},
        {gone: gone_state},
        threshold(),
    )
    x, y = plan.assignments
    assert x.deleted and not y.deleted and y.decision == "created" and y.report_id == report_id_for(1, "y")


def test_report_stats_centroid_and_cohesion_follow_each_join():
    rng = np.random.default_rng(5)
    vectors = [v / np.linalg.norm(v) for v in rng.normal(size=(4, 8))]
    stats = ReportStats.of(vectors[:2])
    for joined in range(3, 5):
        before = stats.centroid.copy(), stats.cohesion
        stats.add(vectors[joined - 1])
        again = ReportStats.of(vectors[:joined])
        assert np.array_equal(stats.centroid, again.centroid) and stats.cohesion == again.cohesion
        assert not np.array_equal(stats.centroid, before[0]) and stats.cohesion != before[1]


def test_stored_candidate_is_joined_and_the_report_statistics_follow():
    rid = "r1-00000000000000aa"
    stats, state = existing(rid, unit(1, 0))
    all_stats, states = {rid: stats}, {rid: state}
    plan = plan_batch([signal("n", unit(1, 0.1))], {"n": [Candidate("old", rid, 0.9)]}, all_stats, states, threshold())
    assert plan.assignments[0].report_id == rid and plan.promotions[0].report_id == rid
    assert all_stats[rid].count == 2 and states[rid].status == lc.CANDIDATE


def test_below_threshold_starts_a_new_report():
    rid = "r1-00000000000000aa"
    stats, state = existing(rid, unit(1, 0))
    plan = plan_batch(
        [signal("n", unit(1, 0))], {"n": [Candidate("old", rid, 0.3)]}, {rid: stats}, {rid: state}, threshold()
    )
    assert plan.assignments[0].decision == "created"


def test_deleted_report_keeps_the_signal_as_deleted_and_resolved_opens_a_recurrence():
    gone, done = "r1-00000000000000aa", "r1-00000000000000bb"
    gone_stats, gone_state = existing(gone, unit(1, 0), 2, lc.DELETED)
    done_stats, done_state = existing(done, unit(0, 1), 2, lc.RESOLVED)
    plan = plan_batch(
        [signal("x", unit(1, 0)), signal("y", unit(0, 1))],
        {"x": [Candidate("o1", gone, 0.95)], "y": [Candidate("o2", done, 0.95)]},
        {gone: gone_stats, done: done_stats},
        {gone: gone_state, done: done_state},
        threshold(),
    )
    x, y = plan.assignments
    assert x.deleted and x.report_id == gone and x.decision == "deleted_report"
    assert y.decision == "recurrence" and y.report_id == report_id_for(1, "y")
    assert plan.events[0].detail == f"recurrence_of:{done}"
    assert not any(e.report_id == gone for e in plan.events)


def test_candidate_reports_carry_context_from_every_probe():
    rid, other = "r1-00000000000000aa", "r1-00000000000000bb"
    stats = {rid: existing(rid, unit(1, 0), 3)[0], other: existing(other, unit(0, 1))[0]}
    found = [
        Candidate("s1", rid, 0.8, 0),
        Candidate("s2", rid, 0.9, 1),
        Candidate("s3", other, 0.5, 0),
        Candidate("s4", "r1-unknown", 0.99, 0),
    ]
    reports = candidate_reports(signal("n", unit(1, 0)), found, stats, {"s2": "text of s2"})
    assert [r.report_id for r in reports] == [rid, other]
    best = reports[0]
    assert (best.best_signal_id, best.probe_hits, best.size, best.best_signal_text) == ("s2", 2, 3, "text of s2")
    assert best.centroid == pytest.approx(unit(1, 0)) and best.cohesion == pytest.approx(1.0)
    assert best.title == f"title of {rid}"


def test_report_stats_cohesion_matches_a_recomputation():
    rng = np.random.default_rng(3)
    vectors = [v / np.linalg.norm(v) for v in rng.normal(size=(6, 8))]
    stats = ReportStats.of(vectors)
    centroid = np.mean(vectors, axis=0)
    centroid /= np.linalg.norm(centroid)
    assert stats.cohesion == pytest.approx(float(np.mean([v @ centroid for v in vectors])))
    assert stats.centroid == pytest.approx(centroid)


def test_report_stats_without_members_have_no_centroid_and_zero_cohesion():
    empty = ReportStats()
    assert empty.cohesion == 0.0
    with pytest.raises(ValueError, match="no members has no centroid"):
        empty.candidate("r1", 0.0, "s1")  # a candidate carries the centroid


def test_local_candidates_use_every_probe():
    first = signal("a", unit(1, 0, 0))
    probe_only = signal("b", unit(0, 0, 1), probes=[unit(1, 0, 0)])
    plan = plan_batch([first, probe_only], {}, {}, {}, threshold())
    assert plan.assignments[1].report_id == plan.assignments[0].report_id


def test_decisions_are_deterministic():
    batch = [signal(str(i), unit(1, i / 10, 0)) for i in range(6)]
    assert (
        plan_batch(batch, {}, {}, {}, threshold()).assignments == plan_batch(batch, {}, {}, {}, threshold()).assignments
    )
