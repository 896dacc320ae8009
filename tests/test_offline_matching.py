import dataclasses
import math

import numpy as np
import pytest

from signals_assets.grouping.offline_matching import (
    MatchParameters,
    ReportStats,
    decide,
    keyword_queries,
)

DIM = 8


def unit(*values):
    vector = np.zeros(DIM)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


def around(axis: int, spread: float, count: int, seed: int = 0):
    """`count` unit vectors at cosine about 1/sqrt(1+spread²) from basis vector `axis`."""
    rng = np.random.default_rng(seed)
    vectors = np.eye(DIM)[axis] + spread * rng.normal(size=(count, DIM)) / math.sqrt(DIM)
    return list(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))


def report(report_id, members, signal, probe_hits=1):
    stats = ReportStats.of(members)
    sims = [float(np.dot(m, signal)) for m in members]
    best = int(np.argmax(sims))
    return stats.candidate(report_id, sims[best], f"{report_id}-s{best}", probe_hits)


def test_no_candidates_starts_a_new_report():
    decision = decide(unit(1, 0), [])
    assert decision.report_id is None and decision.reason == "no_candidates" and decision.matched_signal_id == ""


def test_joins_a_cohesive_report_close_to_the_signal():
    members = [unit(1, 0.20, 0.1), unit(1, 0.1, 0.2), unit(1, 0.15, 0.15), unit(1, 0.2, 0.2)]
    signal = unit(1, 0.15, 0.12)
    decision = decide(signal, [report("r1", members, signal)])
    assert decision.report_id == "r1" and decision.reason == "joined"
    assert decision.matched_signal_id.startswith("r1-s")


def test_picks_the_closer_of_two_reports():
    near = [unit(1, 0.1, 0), unit(1, 0.15, 0)]
    far = [unit(1, 0.9, 0), unit(1, 1.0, 0)]
    signal = unit(1, 0.12, 0)
    decision = decide(signal, [report("far", far, signal), report("near", near, signal)])
    assert decision.report_id == "near"


def test_unrelated_report_is_weak():
    signal = unit(1, 0, 0)
    decision = decide(signal, [report("r1", [unit(0, 1, 0), unit(0.1, 1, 0)], signal)])
    assert decision.report_id is None and decision.reason == "weak"


def test_refuses_when_a_runner_up_report_is_as_close():
    params = MatchParameters(
        best_weight=1.0,
        centroid_weight=0.0,
        margin_weight=1.0,
        margin_cap=0.1,
        join_score=1.55,
        size_slope=0.0,
        singleton_extra=0.0,
        min_best_similarity=0.0,
        cohesion_slack=1.0,
    )
    signal = unit(1, 0, 0)
    a = report("a", [unit(1, 0.55, 0)], signal)  # cosine 0.876 each: score 2 × 0.876 = 1.75
    b = report("b", [unit(1, 0, 0.55)], signal)
    assert decide(signal, [a, b], params).report_id in {"a", "b"}  # enough evidence even without a lead
    stricter = dataclasses.replace(params, join_score=1.80)
    assert decide(signal, [a], stricter).report_id == "a"  # 1.75 + 0.1 ≥ 1.80: a clear lead still joins
    tied = decide(signal, [a, b], stricter)  # 1.75 + 0 < 1.80: b is as close, no lead
    assert tied.report_id is None and tied.reason == "ambiguous"


def test_refuses_when_joining_would_break_a_tight_reports_cohesion():
    # a tight report (members at cosine ~0.99 to one another) and a signal that is near one member only
    members = [unit(1, 0.05, 0, 0), unit(1, 0.0, 0.05, 0), unit(1, 0.03, 0.03, 0), unit(1, -0.04, 0.02, 0)]
    signal = unit(1, 0.0, 0.0, 0.75)  # cosine 0.8 to the members
    params = MatchParameters(
        join_score=0.0, singleton_extra=0.0, min_best_similarity=0.0, prior_weight=0.0, cohesion_slack=0.1
    )
    decision = decide(signal, [report("tight", members, signal)], params)
    assert decision.report_id is None and decision.reason == "not_specific"
    loose = dataclasses.replace(params, cohesion_slack=0.3)
    assert decide(signal, [report("tight", members, signal)], loose).report_id == "tight"


def test_floor_on_the_nearest_member():
    signal = unit(1, 0, 0)
    params = MatchParameters(join_score=-10.0, min_best_similarity=0.9)
    decision = decide(signal, [report("r", [unit(1, 1, 0)], signal)], params)
    assert decision.report_id is None and decision.reason == "below_floor"


def test_decision_is_independent_of_candidate_order():
    signal = unit(1, 0.3, 0.2)
    candidates = [
        report("a", [unit(1, 0.3, 0.25)], signal),
        report("b", [unit(1, 0.35, 0.2), unit(1, 0.2, 0.2)], signal),
        report("c", [unit(0.2, 1, 0)], signal),
    ]
    assert decide(signal, candidates) == decide(signal, candidates[::-1])


@pytest.mark.parametrize("count", [1, 2, 7])
def test_report_stats_incremental_update_matches_recomputation(count):
    members = around(2, 0.8, count, seed=count)
    stats = ReportStats()
    for m in members:
        stats.add(m * 3.0)  # non-unit input is normalised on add
    matrix = np.asarray(members)
    mean = matrix.mean(axis=0)
    centroid = mean / np.linalg.norm(mean)
    assert stats.count == count
    assert np.allclose(stats.centroid, centroid)
    assert np.linalg.norm(stats.centroid) == pytest.approx(1.0)
    assert stats.cohesion == pytest.approx(float(np.mean(matrix @ centroid)))
    # mean member similarity of a new signal = centroid similarity × cohesion
    signal = unit(1, 1, 1)
    assert float(signal @ stats.centroid) * stats.cohesion == pytest.approx(float(np.mean(matrix @ signal)))
    if count > 1:
        pairwise = [float(matrix[i] @ matrix[j]) for i in range(count) for j in range(count) if i < j]
        rho = (count * stats.cohesion**2 - 1) / (count - 1)
        assert rho == pytest.approx(np.mean(pairwise))


def test_single_member_report_has_full_cohesion():
    stats = ReportStats.of([unit(0, 1)])
    assert stats.cohesion == pytest.approx(1.0)
    assert stats.candidate("r", 0.7, "s").size == 1


def test_keyword_queries_keep_content_words():
    assert keyword_queries("Why was my card payment declined at the shop?") == ["card payment declined shop"]
    assert keyword_queries("card declined") == []
    assert keyword_queries("Is it?") == []


def test_decisions_are_the_same_on_a_scaled_and_shifted_pool():
    """Compress every cosine of a team's signals (gain · c + shift): judged on the pool's own
    similarity scale, each signal makes the same decision; judged on the tuned scale, it would not."""
    from signals_assets.grouping.similarity_scale import REFERENCE, pool_scale

    from conftest import rescaled

    rng = np.random.default_rng(8)
    axes = np.eye(32)
    problem = axes[0] + 0.09 * rng.standard_normal((7, 32))  # 6 members and one more of the same problem
    other = axes[1] + 0.09 * rng.standard_normal((4, 32))
    stranger = rng.standard_normal((1, 32))
    background = rng.standard_normal((300, 32))
    pool = np.vstack([problem, other, stranger, background])
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)

    def decisions(vectors, scale):
        members, others = vectors[:6], vectors[7:11]
        made = []
        for signal in (vectors[6], vectors[11]):
            reports = [report("problem", members, signal), report("other", others, signal)]
            decision = decide(signal, reports, MatchParameters(), scale)
            made.append((decision.report_id, decision.reason))
        return made

    original = decisions(pool, pool_scale(pool))
    assert original == [("problem", "joined"), (None, "weak")]
    compressed = rescaled(pool, 0.45, 0.05)
    assert decisions(compressed, pool_scale(compressed)) == original
    assert decisions(compressed, REFERENCE)[0] == (None, "weak")  # a fixed scale splits the problem
