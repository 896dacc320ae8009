"""Consolidation of the open pool: clustering rules, report id mapping, and the batch plan it rewrites."""

from collections import Counter

import numpy as np
import pytest

from signals_assets.grouping import consolidation
from signals_assets.grouping.consolidation import ConsolidationParameters, PoolSignal, cluster_pool, map_clusters
from signals_assets.grouping.engine import Assignment, BatchPlan, BatchSignal, Event, consolidate, report_id_for
from signals_assets.grouping.similarity_scale import REFERENCE, narrowed, nearest_rows, pair_cosines, pool_scale
from signals_assets.reports import lifecycle as lc
from signals_assets.reports.lifecycle import ReportState

from conftest import rescaled


def neighbourhoods(vectors: np.ndarray, size: int, block_rows: int = 256):
    """Each row's neighbourhood of `size` and density, as the consolidation's first pass finds them."""
    return narrowed(nearest_rows(vectors, size, block_rows), size)


def around(direction: np.ndarray, count: int, spread: float, rng) -> list[np.ndarray]:
    """`count` unit vectors scattered around `direction`."""
    vectors = direction + spread * rng.standard_normal((count, len(direction)))
    return list(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))


def test_two_dense_problems_become_two_clusters_and_stragglers_stay_alone():
    rng = np.random.default_rng(0)
    axes = np.eye(64)
    first, second = around(axes[0], 10, 0.08, rng), around(axes[1], 10, 0.08, rng)
    stragglers = [axes[10], axes[20]]
    labels = cluster_pool(first + second + stragglers)
    assert len(set(labels[:10])) == 1 and len(set(labels[10:20])) == 1 and labels[0] != labels[10]
    assert len({labels[20], labels[21], labels[0], labels[10]}) == 4
    assert labels[0] == 0 and labels[10] == 1  # labels in order of first appearance


def test_unrelated_signals_are_not_collapsed_even_though_each_is_its_neighbourhoods_best():
    """The locally scaled similarity alone would join a pool of strangers; the absolute guards do not."""
    rng = np.random.default_rng(1)
    strangers = list(rng.standard_normal((40, 64)))
    assert len(set(cluster_pool(strangers))) == 40
    relaxed = ConsolidationParameters(link_floor=-1.0, small_floor=-1.0)
    assert len(set(cluster_pool(strangers, relaxed))) < 40


def test_a_small_report_needs_close_members():
    rng = np.random.default_rng(2)
    pair = around(np.eye(64)[0], 2, 0.5, rng)  # loosely related: cosine well below small_floor
    cosine = float(pair[0] @ pair[1])
    assert cosine < ConsolidationParameters().small_floor
    assert len(set(cluster_pool(pair + list(rng.standard_normal((20, 64)))))) == 22


def test_a_small_report_just_under_the_floor_stands_only_when_nothing_else_is_near():
    """Three paraphrases of one complaint whose mean (rescaled) cosine is just under `small_floor` stay
    one report in a pool where nothing else is near them (a team's first waves); the same three are
    dissolved once the pool holds signals about as close to them as they are to one another."""
    rng = np.random.default_rng(2)
    params = ConsolidationParameters()
    trio = np.asarray(around(np.eye(64)[0], 3, 0.075, rng))
    strangers = rng.standard_normal((30, 64))
    strangers /= np.linalg.norm(strangers, axis=1, keepdims=True)
    pool = np.vstack([trio, strangers])
    cohesion = consolidation._cohesion([0, 1, 2], pool, pool_rescaling(pool))
    assert params.apart_floor <= cohesion < params.small_floor  # only the new rule can keep them
    assert len(set(cluster_pool(pool)[:3])) == 1
    assert len(set(cluster_pool(pool, ConsolidationParameters(apart_floor=1.0))[:3])) == 3

    look_alikes = trio + 0.08 * rng.standard_normal((3, 64))  # one close to each member
    look_alikes /= np.linalg.norm(look_alikes, axis=1, keepdims=True)
    crowded = np.vstack([trio, look_alikes, strangers])
    assert consolidation._cohesion([0, 1, 2], crowded, pool_rescaling(crowded)) >= params.apart_floor
    assert len(set(guarded_first_rows(crowded, 3, params))) == 3


def chain_of_strangers(rng, length: int, dimensions: int = 64) -> np.ndarray:
    """`length` unit vectors, each a step from the one before: neighbours along the chain are close,
    its ends are strangers."""
    steps = [rng.standard_normal(dimensions)]
    for _ in range(length - 1):
        steps.append(steps[-1] + 0.9 * rng.standard_normal(dimensions))
    chain = np.asarray(steps)
    return chain / np.linalg.norm(chain, axis=1, keepdims=True)


def test_a_mid_sized_cluster_must_stand_apart_from_the_rest_of_the_pool():
    """The separation guard judges a cluster by its members' closeness to one another against their
    closeness to the signals outside it, not by an absolute cosine: the same 8 signals, merged by the
    linkage, stay one cluster in a pool of strangers and are split up once the pool holds signals as
    close to them as they are to one another."""
    rng = np.random.default_rng(11)
    params = ConsolidationParameters()
    assert params.small_size < 8 <= params.separation_size
    chain = chain_of_strangers(rng, 8)
    background = rng.standard_normal((60, 64))
    background /= np.linalg.norm(background, axis=1, keepdims=True)
    look_alikes = np.repeat(chain, 7, axis=0)  # 7 signals close to each chain member, outside the chain
    look_alikes += 0.05 * rng.standard_normal(look_alikes.shape)
    look_alikes /= np.linalg.norm(look_alikes, axis=1, keepdims=True)

    assert len(set(guarded_first_rows(np.vstack([chain, background]), 8, params))) == 1
    assert len(set(guarded_first_rows(np.vstack([chain, look_alikes, background]), 8, params))) > 1


def guarded_first_rows(pool: np.ndarray, count: int, params: ConsolidationParameters) -> list[int]:
    """The guards' labels for the first `count` rows of `pool`, on a tree that merges them and nothing else."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    distance = np.full((len(pool), len(pool)), 2.0)
    distance[:count, :count] = 0.5
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance), "average")
    return consolidation.guarded_clusters(tree, pool, params, pool_rescaling(pool))[:count]


def pool_rescaling(pool: np.ndarray):
    """The pool's cosines moved onto the reference scale, as `cluster_pool` moves them."""
    gain, offset = pool_scale(pool).affine_to(REFERENCE)
    return lambda cosine: cosine * gain + offset


def strangers_beside(rows: np.ndarray, rng) -> np.ndarray:
    """`rows` (the first rows of the pool) and 60 strangers."""
    strangers = rng.standard_normal((60, rows.shape[1]))
    return np.vstack([rows, strangers / np.linalg.norm(strangers, axis=1, keepdims=True)])


def topic_and_strangers(rng, count: int, spread: float) -> tuple[np.ndarray, list[int], object]:
    """A pool of `count` signals around one direction (rows 0..count-1) and 60 strangers; the members
    and the pool's rescaling."""
    pool = strangers_beside(np.asarray(around(np.eye(64)[0], count, spread, rng)), rng)
    return pool, list(range(count)), pool_rescaling(pool)


def test_the_less_cohesive_a_mid_sized_cluster_the_further_apart_it_must_stand():
    """Seven loosely related signals that stand apart from a pool of strangers by more than
    `separation_margin` are still split when cohesion and separation together fall short of
    `separation_total` (strangers that share a topic word); seven close ones stand."""
    params = ConsolidationParameters()
    pool, members, rescale = topic_and_strangers(np.random.default_rng(0), 7, 0.15)
    cohesion, separation = (
        consolidation._cohesion(members, pool, rescale),
        consolidation._separation(members, pool, rescale),
    )
    assert separation >= params.separation_margin and cohesion + separation < params.separation_total
    assert len(set(guarded_first_rows(pool, 7, params))) > 1
    assert len(set(guarded_first_rows(pool, 7, ConsolidationParameters(separation_total=0.0)))) == 1

    pool, members, rescale = topic_and_strangers(np.random.default_rng(0), 7, 0.08)
    assert consolidation._cohesion(members, pool, rescale) + consolidation._separation(members, pool, rescale) >= (
        params.separation_total
    )
    assert len(set(guarded_first_rows(pool, 7, params))) == 1


def test_a_mid_sized_cluster_whose_members_lack_close_kin_must_stand_further_apart():
    """Seven signals scattered around one topic that reach `separation_total` together, but only just,
    are split when their members lack close kin: they must reach `loose_kin_penalty` more. Counted as
    close kin (a floor under theirs), or without the penalty, they stand."""
    params = ConsolidationParameters()
    pool, members, rescale = topic_and_strangers(np.random.default_rng(0), 7, 0.13)
    together = consolidation._cohesion(members, pool, rescale) + consolidation._separation(members, pool, rescale)
    kin = consolidation._kinship(members, pool, params.kin_nearest, rescale)
    assert params.separation_total <= together < params.separation_total + params.loose_kin_penalty
    assert kin < params.kinship_floor
    assert len(set(guarded_first_rows(pool, 7, params))) > 1
    assert len(set(guarded_first_rows(pool, 7, ConsolidationParameters(loose_kin_penalty=0.0)))) == 1
    assert len(set(guarded_first_rows(pool, 7, ConsolidationParameters(kinship_floor=kin - 0.01)))) == 1


def test_cohesion_is_the_mean_pairwise_rescaled_cosine():
    rng = np.random.default_rng(5)
    rows = rng.standard_normal((40, 16))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    members = [3, 7, 8, 20, 31, 39]
    cosines = [rows[i] @ rows[j] for i in members for j in members if i != j]
    assert consolidation._cohesion(members, rows, lambda c: 2 * c + 0.1) == pytest.approx(2 * np.mean(cosines) + 0.1)
    assert consolidation._cohesion([4], rows, lambda c: 2 * c + 0.1) == 1.0


def test_a_large_cluster_needs_close_kin_not_cohesion():
    """Twelve signals scattered around one topic (strangers that share a topic word) are split, though
    more cohesive than twelve made of four phrasings repeated three times each, which stand: what
    tells a real problem of ten or more from a chained topic is that each member has close kin in it."""
    params = ConsolidationParameters()
    assert 12 > params.separation_size
    rng = np.random.default_rng(0)
    topic = strangers_beside(np.asarray(around(np.eye(64)[0], 12, 0.12, rng)), rng)
    rng = np.random.default_rng(0)
    phrasings = around(np.eye(64)[0], 4, 0.15, rng)
    problem = strangers_beside(np.vstack([around(phrasing, 3, 0.03, rng) for phrasing in phrasings]), rng)
    members = list(range(12))
    assert consolidation._cohesion(members, topic, pool_rescaling(topic)) > consolidation._cohesion(
        members, problem, pool_rescaling(problem)
    )
    assert consolidation._kinship(members, topic, params.kin_nearest, pool_rescaling(topic)) < params.kinship_floor
    assert len(set(guarded_first_rows(topic, 12, params))) > 1
    assert len(set(guarded_first_rows(topic, 12, ConsolidationParameters(kinship_floor=-1.0)))) == 1
    assert len(set(guarded_first_rows(problem, 12, params))) == 1


def test_kinship_is_the_mean_similarity_to_the_nearest_fellow_members_in_blocks_of_any_size(monkeypatch):
    rng = np.random.default_rng(6)
    rows = rng.standard_normal((50, 16))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    members = [0, 3, 7, 8, 20, 31, 39, 44, 49]
    cosines = 2 * (rows[members] @ rows[members].T) + 0.1
    np.fill_diagonal(cosines, -np.inf)
    expected = np.mean(np.sort(cosines, axis=1)[:, -3:])
    for block_rows in (256, 4, 1):
        monkeypatch.setattr(consolidation, "BLOCK_ROWS", block_rows)
        assert consolidation._kinship(members, rows, 3, lambda c: 2 * c + 0.1) == pytest.approx(expected)
    assert consolidation._kinship([4, 9], rows, 3, lambda c: c) == pytest.approx(rows[4] @ rows[9])


def test_a_fragment_whose_neighbours_lie_in_a_larger_cluster_joins_it():
    """After the cut, a small cluster whose members' nearest signals are mostly in one larger cluster,
    and close enough, moves into it; one whose neighbours are its own, or only far ones, stays."""
    rng = np.random.default_rng(12)
    axes = np.eye(64)
    bulk = around(axes[0], 20, 0.08, rng)
    fragment = around(axes[0] + 0.5 * axes[1], 2, 0.05, rng)  # the problem's unusual phrasings
    apart = around(axes[2], 3, 0.05, rng)  # a small problem of its own
    strangers = list(rng.standard_normal((20, 64)))
    pool = np.asarray(bulk + fragment + apart + strangers)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    labels = [0] * 20 + [1] * 2 + [2] * 3 + list(range(3, 23))
    params = ConsolidationParameters()
    neighbourhood, density = neighbourhoods(pool, params.min_neighbours)

    def attached(floor: float) -> list[int]:
        return consolidation.attached_clusters(
            labels, neighbourhood.members, density, pool, ConsolidationParameters(link_floor=floor), lambda c: c
        )

    result = attached(0.5)
    assert result[20:22] == [0, 0] and result[:20] == [0] * 20
    assert result[22:] == labels[22:]  # the small problem and the strangers stay
    assert attached(0.95)[20:22] == [1, 1]  # its nearest bulk signals are not close enough


def test_clusters_keep_the_report_that_holds_most_of_their_signals():
    pool = [PoolSignal(f"s{i}", report, [1.0], 0.5, "") for i, report in enumerate(["A", "A", "B", "B", "B", "C"])]
    labels = [0, 0, 0, 1, 1, 2]
    made = []

    def new_id(seed, used):
        made.append(seed)
        return f"new-{seed}"

    # cluster 0 holds A twice and B once, cluster 1 holds B twice: A → 0, B → 1, C → 2
    assert map_clusters(pool, labels, {"A": 0, "B": 0, "C": 0}, new_id) == ["A", "A", "A", "B", "B", "C"]
    # two clusters want A: the larger overlap keeps it, the other gets a new id seeded by its first signal
    assert map_clusters(pool[:2] + pool[5:], [0, 1, 1], {"A": 0, "C": 0}, new_id) == ["A", "C", "C"]
    assert map_clusters(pool[:3], [0, 0, 1], {"A": 0}, new_id) == ["A", "A", "new-s2"] and made == ["s2"]
    # equal overlaps: the older report (lower rank) keeps its id, whatever the ids
    assert map_clusters(pool[2:3] + pool[:1], [0, 0], {"A": 1, "B": 0}, new_id) == ["B", "B"]
    assert map_clusters(pool[2:3] + pool[:1], [0, 0], {"A": 0, "B": 1}, new_id) == ["A", "A"]


def test_a_batch_changes_only_the_reports_its_signals_reach():
    """Earlier reports A, B (one problem, split), C, D and E; the batch's signal n clusters with A and
    B's signals, and B's last signal with C's: the batch reaches A, B and, through B, C. D and E swap
    a signal in the clustering (a few shifted neighbourhood ranks): unreached, they keep theirs."""
    reports = ["A", "A", "B", "B", "C", "C", "D", "D", "E", "E"]
    pool = [PoolSignal(f"s{i}", report, [1.0], 0.5, "") for i, report in enumerate(reports)]
    pool.append(PoolSignal("n", "N", [1.0], 0.5, ""))
    labels = [0, 0, 0, 1, 1, 1, 2, 3, 2, 3, 0]
    reached = consolidation.reached_by_batch(pool, 10, labels)
    assert reached[:6] + reached[10:] == [0, 0, 0, 1, 1, 1, 0]
    assert reached[6:10] == [4, 4, 5, 5]  # D and E each under a fresh label of their own
    # a batch with no signal in the pool (all of it joined reports with research in flight) changes nothing
    assert consolidation.reached_by_batch(pool[:10], 10, labels[:10]) == [4 + i // 2 for i in range(10)]


def test_a_wave_leaves_the_reports_it_does_not_reach_as_they_were():
    """A team's pool holds two problems, each a report, and a third report of two strangers; the
    batch brings one more signal of the first problem. Whatever the clustering does to the strangers,
    only the first problem's report changes: it takes the new signal, nothing else moves."""
    rng = np.random.default_rng(5)
    first, second = around(np.eye(32)[0], 6, 0.05, rng), around(np.eye(32)[1], 6, 0.05, rng)
    strangers = [unit(*np.eye(32)[7]), unit(*np.eye(32)[9])]
    earlier = [PoolSignal(f"a{i}", "A", v, 0.5, "") for i, v in enumerate(first[:5])]
    earlier += [PoolSignal(f"b{i}", "B", v, 0.5, "") for i, v in enumerate(second)]
    earlier += [PoolSignal(f"x{i}", "X", v, 0.5, "") for i, v in enumerate(strangers)]
    before = {
        "A": ReportState("A", lc.POTENTIAL, 5, 2.5),
        "B": ReportState("B", lc.POTENTIAL, 6, 3.0),
        "X": ReportState("X", lc.POTENTIAL, 2, 1.0),
    }
    created = report_id_for(1, "n1")
    one_pass = BatchPlan(
        [Assignment("n1", created, "created", "", 0.0, 0.5, False)], [Event(created, "created", lc.POTENTIAL, "x")]
    )
    states = before | {created: ReportState(created, lc.POTENTIAL, 1, 0.5)}
    batch = [BatchSignal("n1", 1, "checkout fails", 0.5, first[5])]

    plan = consolidate(one_pass, batch, earlier, before, states, ConsolidationParameters())

    # the strangers are two clusters of their own (a pair of orthogonal vectors is no problem) ...
    assert len(set(cluster_pool([p.embedding for p in earlier] + [first[5]])[-3:-1])) == 2
    # ... yet the batch does not reach them: X keeps both, and only the new signal moves (into A, which
    # reaches the weight threshold)
    assert {a.signal_id: a.report_id for a in plan.assignments} == {"n1": "A"}
    assert [(e.report_id, e.event) for e in plan.events] == [("A", "promoted")]


def unit(*values):
    vector = np.asarray(values, dtype=float)
    return list(vector / np.linalg.norm(vector))


def test_consolidation_merges_a_split_problem_and_suppresses_the_emptied_report():
    """Earlier batches split one problem over reports A (2 signals) and B (1); the batch adds a
    third, unrelated signal and one more of the problem. Afterwards the problem is one report."""
    rng = np.random.default_rng(3)
    problem = around(np.eye(32)[0], 4, 0.05, rng)
    other = unit(*np.eye(32)[5])
    earlier = [
        PoolSignal("e1", "A", problem[0], 0.5, "checkout fails"),
        PoolSignal("e2", "A", problem[1], 0.5, "x"),
        PoolSignal("e3", "B", problem[2], 0.5, "checkout broken"),
    ]
    before = {"A": ReportState("A", lc.CANDIDATE, 2, 1.0, 0, 1), "B": ReportState("B", lc.POTENTIAL, 1, 0.5)}
    batch = [BatchSignal("n1", 1, "card declined", 0.5, problem[3]), BatchSignal("n2", 1, "dark mode", 0.5, other)]
    created = report_id_for(1, "n2")
    one_pass = BatchPlan(
        [
            Assignment("n1", "B", "joined", "e3", 0.9, 0.5, False),
            Assignment("n2", created, "created", "", 0.0, 0.5, False),
        ],
        [Event("B", "promoted", lc.CANDIDATE, research_round=1), Event(created, "created", lc.POTENTIAL, "dark mode")],
    )
    states = {
        "A": before["A"],
        "B": ReportState("B", lc.CANDIDATE, 2, 1.0, 0, 1),
        created: ReportState(created, lc.POTENTIAL, 1, 0.5),
    }

    plan = consolidate(one_pass, batch, earlier, before, states, ConsolidationParameters())

    final = {a.signal_id: a.report_id for a in plan.assignments}
    assert final == {"n1": "A", "n2": created, "e3": "A"}  # e1, e2 stay in A: no row written for them
    assert [a.decision for a in plan.assignments] == ["consolidated", "created", "consolidated"]
    events = [(e.report_id, e.event, e.status) for e in plan.events]
    # B's one-pass promotion is gone, B is merged into A; A (already a candidate) is not promoted again
    assert events == [(created, "created", lc.POTENTIAL), ("B", "merged_into", lc.SUPPRESSED)]
    assert plan.events[1].detail == "merged into A"
    assert plan.promotions == []


def test_signals_older_than_the_pool_limit_keep_their_report_and_a_pool_holding_them_merges_it():
    """A (2 signals) and B (1) are one problem split by earlier batches. A pool that reaches A's
    signals merges B into A; one limited to the 3 newest signals leaves A's outside: no row is
    written for them, A is untouched and B, with the batch's signal of the problem, stays apart."""
    rng = np.random.default_rng(3)
    problem = around(np.eye(32)[0], 4, 0.05, rng)
    earlier = [
        PoolSignal("e1", "A", problem[0], 0.5, "checkout fails"),
        PoolSignal("e2", "A", problem[1], 0.5, "checkout error"),
        PoolSignal("e3", "B", problem[2], 0.5, "checkout broken"),
    ]
    before = {"A": ReportState("A", lc.POTENTIAL, 2, 1.0), "B": ReportState("B", lc.POTENTIAL, 1, 0.5)}
    batch = [
        BatchSignal("n1", 1, "checkout down", 0.5, problem[3]),
        BatchSignal("n2", 1, "dark mode", 0.5, unit(*np.eye(32)[5])),
    ]
    created = report_id_for(1, "n2")
    one_pass = BatchPlan(
        [
            Assignment("n1", "B", "joined", "e3", 0.9, 0.5, False),
            Assignment("n2", created, "created", "", 0.0, 0.5, False),
        ],
        [Event(created, "created", lc.POTENTIAL, "dark mode")],
    )
    states = {
        **before,
        "B": ReportState("B", lc.POTENTIAL, 2, 1.0),
        created: ReportState(created, lc.POTENTIAL, 1, 0.5),
    }

    whole = consolidate(one_pass, batch, earlier, before, states, ConsolidationParameters(pool_limit=5))
    limited = consolidate(one_pass, batch, earlier, before, states, ConsolidationParameters(pool_limit=3))

    assert {a.signal_id: a.report_id for a in whole.assignments} == {"n1": "A", "n2": created, "e3": "A"}
    # A, now 3 signals of weight 1.5, is due for research
    assert [(e.report_id, e.event) for e in whole.events] == [
        (created, "created"),
        ("A", "promoted"),
        ("B", "merged_into"),
    ]
    assert {a.signal_id: a.report_id for a in limited.assignments} == {"n1": "B", "n2": created}
    assert [(e.report_id, e.event) for e in limited.events] == [(created, "created"), ("B", "promoted")]


def test_the_pool_limit_is_a_setting_of_both_providers(monkeypatch):
    from signals_assets.resources.environment import build_resources
    from signals_assets.resources.llm import LLMResource
    from signals_assets.settings import load_settings

    assert build_resources(load_settings())["llm"].grouping().consolidation == ConsolidationParameters()
    monkeypatch.setenv("SIGNALS_CONSOLIDATION_POOL", "4500")
    assert build_resources(load_settings())["llm"].grouping().consolidation.pool_limit == 4500
    openai = LLMResource(provider="openai", api_key="test", base_url="http://127.0.0.1:9", consolidation_pool=2500)
    assert openai.grouping().consolidation.pool_limit == 2500
    monkeypatch.setenv("SIGNALS_CONSOLIDATION_POOL", "1")
    with pytest.raises(ValueError, match="SIGNALS_CONSOLIDATION_POOL='1' must be an integer of at least 2"):
        load_settings()


def test_a_consolidated_report_that_reaches_the_weight_threshold_is_promoted_once():
    rng = np.random.default_rng(4)
    problem = around(np.eye(32)[0], 3, 0.05, rng)
    earlier = [PoolSignal("e1", "A", problem[0], 0.5, "a"), PoolSignal("e2", "B", problem[1], 0.5, "b")]
    before = {"A": ReportState("A", lc.POTENTIAL, 1, 0.5), "B": ReportState("B", lc.POTENTIAL, 1, 0.5)}
    batch = [BatchSignal("n1", 1, "c", 0.5, problem[2])]
    one_pass = BatchPlan(
        [Assignment("n1", "A", "joined", "e1", 0.9, 0.5, False)],
        [Event("A", "promoted", lc.CANDIDATE, research_round=1)],
    )
    states = {"A": ReportState("A", lc.CANDIDATE, 2, 1.0, 0, 1), "B": before["B"]}

    plan = consolidate(one_pass, batch, earlier, before, states, ConsolidationParameters())

    assert {a.signal_id: a.report_id for a in plan.assignments} == {"n1": "A", "e2": "A"}
    assert [(p.report_id, p.research_round, p.detail) for p in plan.promotions] == [("A", 1, "3 signals, weight 1.5")]
    assert ("B", "merged_into") in [(e.report_id, e.event) for e in plan.events]


def test_without_a_pool_the_plan_is_unchanged():
    """A signal that joined a report with research in flight: nothing to re-cluster."""
    plan = BatchPlan([Assignment("n1", "R", "joined", "x", 0.9, 0.5, False)], [])
    states = {"R": ReportState("R", lc.IN_PROGRESS, 5, 2.5)}
    assert (
        consolidate(
            plan, [BatchSignal("n1", 1, "d", 0.5, unit(1, 0))], [], dict(states), states, ConsolidationParameters()
        )
        is plan
    )


def test_a_problem_split_across_batches_is_merged_in_the_store(capsys, object_store, team, monkeypatch):
    """Through the real pipeline: batch 1 leaves every signal alone (one-pass and consolidation both
    split), batch 2 consolidates for real; a batch-1 signal moves and its emptied report is suppressed."""
    import json

    from signals_assets.cli.main import main
    from signals_assets.grouping import offline_matching
    from signals_assets.grouping.engine import MatchDecision
    from signals_assets.settings import load_settings
    from signals_assets.storage.clickhouse import open_chdb

    from conftest import CARD_DECLINED, PASSWORD_RESET, emit_texts

    def process() -> None:
        assert main(["process"]) == 0
        capsys.readouterr()

    def store(sql: str) -> list[dict]:
        settings = load_settings()
        with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
            return db.query(sql)

    monkeypatch.setattr(
        offline_matching, "decide", lambda vector, reports, params, scale: MatchDecision(None, reason="split")
    )
    real_cluster_pool = consolidation.cluster_pool
    monkeypatch.setattr(consolidation, "cluster_pool", lambda vectors, params: list(range(len(vectors))))
    emit_texts(object_store, CARD_DECLINED[:2] + PASSWORD_RESET[:1])
    process()
    first = store("SELECT signal_id, report_id, batch_key FROM report_assignments")
    assert len({r["report_id"] for r in first}) == 3

    monkeypatch.setattr(consolidation, "cluster_pool", real_cluster_pool)
    emit_texts(object_store, CARD_DECLINED[2:] + PASSWORD_RESET[1:], start=10)
    process()

    current = store("SELECT signal_id, report_id FROM current_assignments WHERE deleted = 0")
    assert len(current) == 6
    sizes = sorted(
        json.loads(json.dumps([r["report_id"] for r in current])).count(r) for r in {r["report_id"] for r in current}
    )
    assert sizes == [3, 3]
    moved = store(
        "SELECT a.signal_id AS signal_id, a.report_id AS report_id FROM report_assignments AS a "
        "WHERE a.decision = 'consolidated' AND a.batch_key > (SELECT min(batch_key) FROM signals) "
        "AND a.signal_id IN (SELECT signal_id FROM signals WHERE batch_key = (SELECT min(batch_key) FROM signals))"
    )
    assert len(moved) == 1
    reports = {r["report_id"]: r for r in store("SELECT report_id, status, signal_count FROM reports")}
    suppressed = [r for r in reports.values() if r["status"] == "suppressed"]
    assert len(suppressed) == 1 and suppressed[0]["signal_count"] == 0
    event = store(
        f"SELECT detail FROM report_events WHERE report_id = '{suppressed[0]['report_id']}' AND event = 'merged_into'"
    )
    assert event == [{"detail": f"merged into {moved[0]['report_id']}"}]
    live = [r for r in reports.values() if r["signal_count"]]
    assert len(live) == 2 and all(r["status"] not in ("potential", "suppressed") for r in live)


def test_a_report_recreated_after_a_merge_is_researched_in_a_new_round(capsys, object_store, team, monkeypatch):
    """A researched report merged away, then opened again by its first signal (a cluster of its own
    again: it gets its old id back), is promoted in its next round. It used to start again at round 1,
    whose outcome from before the merge made the report run take the promotion as done: the report
    stayed `candidate` for good and `signals status --wait` never settled (found by a kill -9 sweep)."""
    from signals_assets.cli.main import main
    from signals_assets.grouping import offline_matching
    from signals_assets.grouping.engine import MatchDecision, report_id_for
    from signals_assets.llm.minilm import load_encoder
    from signals_assets.settings import load_settings
    from signals_assets.storage.clickhouse import open_chdb

    from conftest import CARD_DECLINED, PASSWORD_RESET, emit_texts

    def process() -> None:
        assert main(["process"]) == 0
        capsys.readouterr()

    def store(sql: str) -> list[dict]:
        settings = load_settings()
        with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
            return db.query(sql)

    other = "Dark mode makes the charts unreadable."
    texts = CARD_DECLINED + PASSWORD_RESET[:2] + [other]
    reference = load_encoder().encode(texts)
    label_of: dict[str, int] = {}  # the consolidation's cluster of each text, chosen per batch below

    def cluster_by_text(vectors, params):
        return [label_of[texts[int(np.argmax(reference @ np.asarray(v, np.float32)))]] for v in vectors]

    monkeypatch.setattr(
        offline_matching, "decide", lambda vector, reports, params, scale: MatchDecision(None, reason="split")
    )
    monkeypatch.setattr(consolidation, "cluster_pool", cluster_by_text)

    # Batch 1: a card problem and a password problem, each promoted and researched in round 1.
    label_of.update({t: 0 for t in CARD_DECLINED} | {t: 1 for t in PASSWORD_RESET[:2]})
    emit_texts(object_store, CARD_DECLINED[:2])
    password_ids = emit_texts(object_store, PASSWORD_RESET[:2], start=10, weight=1.0)
    process()
    [merged] = {
        r["report_id"]
        for r in store("SELECT signal_id, report_id FROM current_assignments")
        if r["signal_id"] in password_ids
    }
    [opener] = [s for s in password_ids if report_id_for(1, s) == merged]
    assert store(f"SELECT status, research_rounds FROM reports WHERE report_id = '{merged}'") == [
        {"status": "ready", "research_rounds": 1}
    ]

    # Batch 2: one cluster: the password report is merged into the older card report.
    label_of.update({t: 0 for t in texts})
    emit_texts(object_store, CARD_DECLINED[2:], start=20)
    process()
    assert store(f"SELECT status, signal_count FROM reports WHERE report_id = '{merged}'") == [
        {"status": "suppressed", "signal_count": 0}
    ]

    # Batch 3: the merged report's first signal is a cluster of its own again, under its old id (the
    # batch's signal joins the card cluster: a batch changes only the reports it reaches).
    label_of.update({PASSWORD_RESET[password_ids.index(opener)]: 1, other: 0})
    emit_texts(object_store, [other], start=30)
    process()
    promoted = store(
        f"SELECT research_round FROM report_events WHERE report_id = '{merged}' AND event = 'promoted' ORDER BY at"
    )
    assert [r["research_round"] for r in promoted] == [1, 2]
    [report] = store(f"SELECT status, signal_count, research_rounds FROM reports WHERE report_id = '{merged}'")
    assert report == {"status": "ready", "signal_count": 1, "research_rounds": 2}


def test_the_demo_team_keeps_its_password_reset_report():
    """A small, realistic pool (the 28 demo signals, scripts/demo): the guards for small reports
    must not dissolve a problem reported six ways, nor join the unrelated feature request."""
    import json
    from pathlib import Path

    from signals_assets.llm.minilm import load_encoder

    rows = [json.loads(line) for line in (Path(__file__).parents[1] / "scripts/demo/signals.jsonl").open()]
    labels = cluster_pool(load_encoder().encode([r["description"] for r in rows]))
    password = [i for i, r in enumerate(rows) if "reset" in r["description"].lower()]
    assert len(password) == 6
    assert len({labels[i] for i in password}) == 1
    wishlist = next(i for i, r in enumerate(rows) if "wishlist" in r["description"])
    assert labels.count(labels[wishlist]) == 1


def dense_cluster_pool(vectors) -> list[int]:
    """The consolidation's distances as they were computed on full n × n matrices, cut by the same
    guards and attachment: the reference the blockwise computation must reproduce label for label."""
    params = ConsolidationParameters()
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    matrix = np.asarray(vectors, dtype=np.float64)
    n = len(matrix)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    rescale = pool_rescaling(matrix)
    raw = np.round(matrix @ matrix.T, 9)
    np.fill_diagonal(raw, np.inf)
    size = min(max(params.min_neighbours, round(n * params.neighbour_share)), n)
    nearest = np.argsort(-raw, axis=1, kind="stable")[:, :size]
    members = np.zeros((n, n))
    members[np.arange(n)[:, None], nearest] = 1.0
    shared = members @ members.T / size
    cosine = rescale(matrix @ matrix.T)
    others = np.where(members > 0, cosine, np.nan)
    np.fill_diagonal(others, np.nan)
    density = np.nanmean(others, axis=1)
    stands_out = cosine - params.density_weight * (density[:, None] + density[None, :]) / 2 - params.link_margin
    similarity = np.minimum(np.maximum(shared - params.shared_neighbour_floor, stands_out), cosine - params.link_floor)
    distance = np.maximum(1.0 - similarity, 0.0)
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), "average")
    labels = consolidation.guarded_clusters(tree, matrix, params, rescale)
    labels = consolidation.attached_clusters(labels, nearest, density, matrix, params, rescale)
    first: dict[int, int] = {}
    return [first.setdefault(label, len(first)) for label in labels]


def varied_pool(count: int, seed: int) -> np.ndarray:
    """Problems of every tightness (from near-duplicates to loose) plus unrelated stragglers, 384 dims."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((count // 12, 384))
    picks = rng.integers(0, len(centres), count)
    spread = rng.uniform(0.2, 1.4, len(centres))[picks, None]
    vectors = centres[picks] + spread * rng.standard_normal((count, 384))
    vectors[rng.random(count) < 0.1] = rng.standard_normal((384,))  # a few identical vectors too
    return vectors


def test_blockwise_clustering_equals_the_dense_clustering_on_3000_signals(monkeypatch):
    monkeypatch.setattr(consolidation, "NARROWINGS", 0)  # the reference is one pass at the first width
    pool = varied_pool(3000, seed=4)
    labels = cluster_pool(pool)
    assert labels == dense_cluster_pool(pool)
    assert 50 < len(set(labels)) < len(pool)  # a real clustering: merges and singletons both


def test_blockwise_clustering_is_the_same_for_any_block_size(monkeypatch):
    pool = varied_pool(301, seed=5)
    expected = dense_cluster_pool(pool)
    for rows in (1, 7, 300, 1000):
        monkeypatch.setattr(consolidation, "BLOCK_ROWS", rows)
        assert cluster_pool(pool) == expected, rows


def topical_pool(rng) -> list[np.ndarray]:
    """12 problems of 20 signals each over a background of 120 one-off signals, in 48 dimensions."""
    centres = rng.standard_normal((12, 48))
    problems = [v for centre in centres for v in around(centre / np.linalg.norm(centre), 20, 0.1, rng)]
    background = rng.standard_normal((120, 48))
    return problems + list(background / np.linalg.norm(background, axis=1, keepdims=True))


def test_pool_scale_is_the_exact_mean_and_spread_of_the_pairwise_cosines():
    from signals_assets.grouping.similarity_scale import pool_scale

    vectors = np.asarray(topical_pool(np.random.default_rng(5)))
    cosine = vectors @ vectors.T
    pairs = cosine[np.triu_indices(len(vectors), k=1)]
    scale = pool_scale(vectors, prior_pairs=0)
    assert scale.centre == pytest.approx(pairs.mean(), abs=1e-9)
    assert scale.spread == pytest.approx(pairs.std(), abs=1e-9)
    shifted = pool_scale(rescaled(vectors, 0.5, 0.3), prior_pairs=0)
    assert shifted.centre == pytest.approx(0.5 * pairs.mean() + 0.3, abs=1e-9)
    assert shifted.spread == pytest.approx(0.5 * pairs.std(), abs=1e-9)


@pytest.mark.parametrize(("signals", "copies"), [(60, 20), (360, 600), (360, 5000)])
def test_a_burst_of_near_copies_counts_as_one_signal_in_the_pool_scale(signals, copies):
    """A ticket sent again and again (a template, an error spike) is one problem, not the background.
    Before, 20 copies beside a pool of 60 lifted its centre and spread until a copy's cosine of 1 read as
    ordinary: every copy, and then the team's other signals, ended in a report of its own. Counted
    among a sample of the pool (5,000 copies: over `COPY_PROBES` rows) as among all of it."""
    from signals_assets.grouping.similarity_scale import pool_scale

    rng = np.random.default_rng(7)
    pool = np.asarray(topical_pool(rng))[-signals:]
    ticket = pool[-1]
    noise = 0.01 * rng.standard_normal((copies, pool.shape[1]))  # cosines of about 0.998 to the ticket
    burst = np.vstack([pool, ticket + noise])
    alone, with_burst = pool_scale(pool), pool_scale(burst)
    assert with_burst.centre == pytest.approx(alone.centre, abs=0.01)
    assert with_burst.spread == pytest.approx(alone.spread, abs=0.01)
    # a copy reads on the tuned scale as it would without the burst
    assert with_burst.to(REFERENCE, 0.998) == pytest.approx(alone.to(REFERENCE, 0.998), abs=0.05)


def test_copies_are_counted_among_a_sample_of_a_large_pool_and_a_signal_without_any_weighs_one():
    from signals_assets.grouping.similarity_scale import COPY_PROBES, copy_weights

    rng = np.random.default_rng(9)
    unrelated = rng.standard_normal((4 * COPY_PROBES, 48))
    unrelated /= np.linalg.norm(unrelated, axis=1, keepdims=True)
    assert copy_weights(unrelated).tolist() == [1.0] * len(unrelated)  # sampled or not
    burst = np.vstack([unrelated, np.repeat(unrelated[:1], 3 * COPY_PROBES, axis=0)])
    weights = copy_weights(burst)
    assert 1 / weights[0] == pytest.approx(1 + 3 * COPY_PROBES, rel=0.2)  # the copies, counted in a sample
    assert weights[1 : len(unrelated)].tolist() == [1.0] * (len(unrelated) - 1)


def test_a_pool_whose_similarities_are_scaled_and_shifted_is_grouped_the_same():
    """Compressing every cosine towards a higher floor (as short texts or another embedding model
    do) changes no decision: the thresholds are relative to the pool's own spread of cosines."""
    pool = topical_pool(np.random.default_rng(6))
    labels = cluster_pool(pool)
    sizes = sorted(Counter(labels).values(), reverse=True)
    assert sizes[:12] == [20] * 12 and sizes[12:] == [1] * 120  # the problems, and nothing else joined
    for gain, shift in ((0.5, 0.3), (0.8, 0.15), (0.4, 0.0)):
        moved = rescaled(pool, gain, shift)
        assert cluster_pool(moved) == labels, (gain, shift)
    # on raw cosines a fixed floor would have decided otherwise: compressed to 0.4 of their size, the
    # problems' own cosines fall below the merge floor
    compressed = rescaled(pool, 0.4, 0.0)[:20]
    within = (compressed @ compressed.T)[np.triu_indices(20, k=1)].mean()
    assert within < ConsolidationParameters().link_floor


def test_distinct_topics_are_not_merged_on_any_scale():
    rng = np.random.default_rng(7)
    strangers = rng.standard_normal((150, 48))
    strangers /= np.linalg.norm(strangers, axis=1, keepdims=True)
    for gain, shift in ((1.0, 0.0), (0.5, 0.4), (0.3, 0.1)):
        assert len(set(cluster_pool(rescaled(strangers, gain, shift)))) == 150, (gain, shift)


def _pool_of(report_id: str, vectors, prefix: str) -> list[PoolSignal]:
    return [PoolSignal(f"{prefix}{i}", report_id, v, 0.5, f"{prefix} {i}") for i, v in enumerate(vectors)]


def test_an_open_signal_joins_a_ready_report_which_is_re_judged_and_re_researched():
    """The earlier batches left one problem as a ready report R (researched, round 1) and an open
    report B holding one more of its signals; the batch brings one more, which the one-pass decision
    put in a report of its own."""
    rng = np.random.default_rng(5)
    problem = around(np.eye(32)[0], 5, 0.05, rng)
    earlier = _pool_of("R", problem[:3], "r") + _pool_of("B", problem[3:4], "b")
    before = {"R": ReportState("R", lc.READY, 3, 1.5, 6, 1), "B": ReportState("B", lc.POTENTIAL, 1, 0.5)}
    batch = [BatchSignal("n1", 1, "checkout fails", 0.5, problem[4])]
    created = report_id_for(1, "n1")
    one_pass = BatchPlan(
        [Assignment("n1", created, "created", "", 0.0, 0.5, False)], [Event(created, "created", lc.POTENTIAL)]
    )
    states = {**before, created: ReportState(created, lc.POTENTIAL, 1, 0.5)}

    plan = consolidate(one_pass, batch, earlier, before, states, ConsolidationParameters())

    assert {a.signal_id: (a.report_id, a.decision) for a in plan.assignments} == {
        "n1": ("R", "consolidated"),
        "b0": ("R", "consolidated"),
    }
    events = {(e.report_id, e.event): e for e in plan.events}
    assert sorted(events) == [("B", "merged_into"), ("R", "consolidated"), ("R", "promoted")]
    assert (events["B", "merged_into"].status, events["B", "merged_into"].detail) == (lc.SUPPRESSED, "merged into R")
    consolidated = events["R", "consolidated"]
    # the event keeps R's status, research gate and round; the promotion that follows moves it on
    assert (consolidated.status, consolidated.signals_at_run, consolidated.research_round) == (lc.READY, 6, 1)
    assert consolidated.detail == "2 signals moved in, absorbed B"
    promoted = events["R", "promoted"]
    assert (promoted.status, promoted.research_round, promoted.detail) == (lc.CANDIDATE, 2, "5 signals, weight 2.5")
    assert [e.event for e in plan.events if e.report_id == "R"] == ["consolidated", "promoted"]


def test_a_large_ready_report_gains_signals_without_re_research():
    """Past RERESEARCH_MAX_SIGNALS the lifecycle does not research a ready report again: it gains
    the signal and records it, without a promotion."""
    rng = np.random.default_rng(6)
    size = lc.RERESEARCH_MAX_SIGNALS + 1
    problem = around(np.eye(32)[0], size + 2, 0.05, rng)
    earlier = _pool_of("R", problem[:size], "r") + _pool_of("B", problem[size : size + 1], "b")
    before = {"R": ReportState("R", lc.READY, size, size / 2, 6, 1), "B": ReportState("B", lc.POTENTIAL, 1, 0.5)}
    batch = [BatchSignal("n1", 1, "checkout fails", 0.5, problem[-1])]
    created = report_id_for(1, "n1")
    one_pass = BatchPlan([Assignment("n1", created, "created", "", 0.0, 0.5, False)], [])
    states = {**before, created: ReportState(created, lc.POTENTIAL, 1, 0.5)}

    plan = consolidate(one_pass, batch, earlier, before, states, ConsolidationParameters())

    assert [(e.report_id, e.event) for e in plan.events if e.report_id == "R"] == [("R", "consolidated")]
    assert plan.promotions == []


def test_two_researched_reports_of_one_problem_merge_into_the_older():
    """A (ready, older) and B (waiting for input, larger) hold one problem: B's signals all move to A,
    B is closed with a merged_into event, every signal is in exactly one report."""
    rng = np.random.default_rng(7)
    problem = around(np.eye(32)[0], 6, 0.05, rng)
    earlier = _pool_of("A", problem[:2], "a") + _pool_of("B", problem[2:5], "b")
    before = {"A": ReportState("A", lc.READY, 2, 1.0, 5, 1), "B": ReportState("B", lc.PENDING_INPUT, 3, 1.5, 6, 2)}
    batch = [BatchSignal("n1", 1, "checkout fails", 0.5, problem[5])]
    created = report_id_for(1, "n1")
    one_pass = BatchPlan([Assignment("n1", created, "created", "", 0.0, 0.5, False)], [])
    states = {**before, created: ReportState(created, lc.POTENTIAL, 1, 0.5)}

    plan = consolidate(one_pass, batch, earlier, before, states, ConsolidationParameters())

    rows = Counter(a.signal_id for a in plan.assignments)
    assert max(rows.values()) == 1  # nothing twice
    final = {p.signal_id: p.report_id for p in earlier} | {a.signal_id: a.report_id for a in plan.assignments}
    assert final == {"a0": "A", "a1": "A", "b0": "A", "b1": "A", "b2": "A", "n1": "A"}  # nothing lost
    events = {(e.report_id, e.event): e for e in plan.events}
    merged = events["B", "merged_into"]
    assert (merged.status, merged.detail, merged.signals_at_run, merged.research_round) == (
        lc.SUPPRESSED,
        "merged into A",
        6,
        2,
    )
    assert events["A", "consolidated"].detail == "4 signals moved in, absorbed B"
    assert (events["A", "promoted"].research_round, events["A", "promoted"].detail) == (2, "6 signals, weight 3")


def test_a_researched_report_sheds_a_stray_and_one_partly_outside_the_pool_is_not_absorbed():
    """R (ready) holds a problem and a stray signal the one-pass decision put there before its
    research: the stray leaves for a report of its own, R gains the open signals of its problem, gets a
    `consolidated` event saying both and, changed and small, is promoted to be judged and researched
    again. Q (ready) is the same problem, but only 2 of its 9 live signals are in the pool: it is not
    merged, so nothing of it is lost. The batch brings one more signal of the problem."""
    rng = np.random.default_rng(8)
    problem = around(np.eye(32)[0], 8, 0.05, rng)
    stray = unit(*np.eye(32)[9])
    earlier = (
        _pool_of("R", problem[:3] + [stray], "r") + _pool_of("Q", problem[3:5], "q") + _pool_of("B", problem[5:7], "b")
    )
    before = {
        "R": ReportState("R", lc.READY, 4, 2.0, 6, 1),
        "Q": ReportState("Q", lc.READY, 9, 4.5, 9, 1),
        "B": ReportState("B", lc.POTENTIAL, 2, 1.0),
    }
    batch = [BatchSignal("n1", 1, "checkout fails", 0.5, problem[7])]
    created = report_id_for(1, "n1")
    one_pass = BatchPlan([Assignment("n1", created, "created", "", 0.0, 0.5, False)], [])
    states = {**before, created: ReportState(created, lc.POTENTIAL, 1, 0.5)}

    plan = consolidate(one_pass, batch, earlier, before, states, ConsolidationParameters())

    moved = {a.signal_id: a.report_id for a in plan.assignments if a.decision == "consolidated"}
    stray_report = moved.pop("r3")
    assert moved == {"b0": "R", "b1": "R", "n1": "R"} and stray_report not in ("R", "Q", "B", created)
    events = {(e.report_id, e.event): e for e in plan.events}
    assert [(e.report_id, e.event) for e in plan.events if e.report_id in ("Q", "B")] == [("B", "merged_into")]
    consolidated = events["R", "consolidated"]
    assert consolidated.detail == "3 signals moved in, 1 signals moved out, absorbed B"
    assert (consolidated.status, consolidated.signals_at_run, consolidated.research_round) == (lc.READY, 6, 1)
    promoted = events["R", "promoted"]
    assert (promoted.research_round, promoted.detail) == (2, "6 signals, weight 3")
    assert (events[stray_report, "created"].status, events[stray_report, "created"].detail) == (
        lc.POTENTIAL,
        "consolidated",
    )


def test_a_report_with_research_in_flight_is_not_reshaped(monkeypatch):
    """P is in progress: a batch signal joined it one-pass and stays there; P gets no event, and the
    open signal of its problem is not moved into it (its signals are not in the pool). The batch has
    no signal in the pool, so it reaches nothing and the pool is not even clustered."""

    def refused(vectors, params):
        raise AssertionError("a batch that reaches nothing clustered the pool")

    monkeypatch.setattr(consolidation, "cluster_pool", refused)
    rng = np.random.default_rng(9)
    problem = around(np.eye(32)[0], 3, 0.05, rng)
    earlier = _pool_of("B", problem[:1], "b")
    before = {"P": ReportState("P", lc.IN_PROGRESS, 4, 2.0, 7, 1), "B": ReportState("B", lc.POTENTIAL, 1, 0.5)}
    batch = [BatchSignal("n1", 1, "same problem", 0.5, problem[1])]
    one_pass = BatchPlan([Assignment("n1", "P", "joined", "p0", 0.9, 0.5, False)], [])
    states = {**before, "P": ReportState("P", lc.IN_PROGRESS, 5, 2.5, 7, 1)}

    plan = consolidate(one_pass, batch, earlier, before, states, ConsolidationParameters())

    assert {a.signal_id: a.report_id for a in plan.assignments} == {"n1": "P"}
    assert [e for e in plan.events if e.report_id == "P"] == []


def test_researched_reports_keep_their_ids_on_their_home_clusters():
    """Labels as the clustering might give them: R (ready) has 2 of its 4 signals in cluster 0 with
    an open signal, the others alone: R keeps cluster 0 and loses the two. S (ready) has 2 of 3 in
    cluster 1 and takes its open signal; T (ready, complete, younger) lands there too and is merged
    into S; U (ready, incomplete) lands there as well and stays alone, and S's third signal leaves."""
    pool = (
        [PoolSignal(f"r{i}", "R", [1.0], 0.5, "") for i in range(4)]
        + [PoolSignal(f"s{i}", "S", [1.0], 0.5, "") for i in range(3)]
        + [PoolSignal("t0", "T", [1.0], 0.5, ""), PoolSignal("u0", "U", [1.0], 0.5, "")]
        + [PoolSignal("b0", "B", [1.0], 0.5, ""), PoolSignal("c0", "C", [1.0], 0.5, "")]
    )
    labels = [0, 0, 2, 3, 1, 1, 4, 1, 1, 0, 1]
    anchored_labels, anchored = consolidation.anchor_researched(pool, 9, labels, ["R", "S", "T", "U"], {"R", "S", "T"})
    assert anchored_labels == [0, 0, 2, 3, 1, 1, 4, 1, 5, 0, 1]  # U alone under a fresh label
    assert anchored == {0: "R", 1: "S", 5: "U"}
    final = map_clusters(
        pool, anchored_labels, {r: i for i, r in enumerate("RSTUBC")}, lambda s, _: f"new-{s}", anchored
    )
    assert final == ["R", "R", "new-r2", "new-r3", "S", "S", "new-s2", "S", "U", "R", "S"]


def test_shared_neighbours_depend_only_on_the_order_of_the_cosines():
    """Any scaling and shifting of the cosines leaves every neighbourhood, so every shared share, as it was;
    signals of one problem share most of their neighbourhood, signals of two problems almost none."""
    from signals_assets.grouping.similarity_scale import shared_neighbours

    vectors = np.asarray(topical_pool(np.random.default_rng(8)))
    members, density = neighbourhoods(vectors, 10)
    assert members.members.shape == (len(vectors), 10)
    assert (members.members[:, 0] == np.arange(len(vectors))).all()  # each signal is in its own, first
    for gain, shift in ((0.5, 0.3), (0.3, 0.1)):
        moved = rescaled(vectors, gain, shift)
        moved_members = neighbourhoods(moved / np.linalg.norm(moved, axis=1, keepdims=True), 10)[0].members
        np.testing.assert_array_equal(moved_members, members.members)
    shared = shared_neighbours(members, np.arange(40))[:, :40]
    same_problem = shared[:20, :20][~np.eye(20, dtype=bool)]
    assert same_problem.mean() > 0.5 and shared[:20, 20:40].max() == 0.0
    nearest_other = np.sort(vectors @ vectors.T - 2 * np.eye(len(vectors)), axis=1)[:, -9:]
    assert density == pytest.approx(nearest_other.mean(axis=1), abs=1e-9)


def test_neighbourhoods_are_the_nearest_rows_of_a_full_sort_ties_by_row_order():
    """Neighbourhoods picked from the row without sorting all of it are those of a full stable sort of the
    rounded cosines (row order breaking ties, here between duplicated signals), whatever the block size."""
    rng = np.random.default_rng(3)
    distinct = rng.standard_normal((120, 16))
    vectors = np.concatenate([distinct, distinct[:40], distinct[:15]])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = np.round(vectors @ vectors.T, 9)
    np.fill_diagonal(cosine, np.inf)
    order = np.argsort(-cosine, axis=1, kind="stable")
    for block_rows in (7, 256):
        widest = nearest_rows(vectors, 175, block_rows)
        for size in (1, 2, 10, 174, 175):
            # found at that width, or cut from the widest (as a narrowing pass does): bit for bit the same
            for members, density in (neighbourhoods(vectors, size, block_rows), narrowed(widest, size)):
                np.testing.assert_array_equal(members.members, order[:, :size], err_msg=f"{size}, {block_rows}")
                if size > 1:
                    nearest = np.take_along_axis(cosine, order[:, 1:size], axis=1).mean(axis=1)
                    np.testing.assert_array_equal(density, nearest)


def test_a_narrowing_pass_computes_the_cosines_its_distances_read_bit_for_bit_and_clusters_alike():
    """`pair_cosines` fills what `pair_distances` reads (each block of rows from the block's first row
    on) exactly as the first pass did, and a narrowing pass clusters as a first pass would."""
    rng = np.random.default_rng(6)
    vectors = rng.standard_normal((700, 24))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    first, again = np.empty((700, 700)), np.full((700, 700), np.nan)
    nearest_rows(vectors, 10, 256, first)
    np.testing.assert_allclose(first, vectors @ vectors.T, atol=1e-12)
    pair_cosines(vectors, 256, again)
    read = np.zeros((700, 700), dtype=bool)
    for start in range(0, 700, 256):
        read[start : start + 256, start:] = True
    np.testing.assert_array_equal(again[read], first[read])
    assert np.isnan(again[~read]).all()

    # a pass at 12 from the first pass's nearest 20 and the cosines computed again (the rest of the
    # matrix NaN, which any read would carry into the labels), as from a first pass at 12
    pool = np.asarray(topical_pool(np.random.default_rng(8)))
    params, rescaling = ConsolidationParameters(), pool_rescaling(pool)
    whole = np.empty((len(pool), len(pool)))
    labels = consolidation._clusters(pool, 12, params, rescaling, whole, nearest_rows(pool, 12, 256, whole))
    partial = np.full_like(whole, np.nan)
    wider = nearest_rows(pool, 20, 256, np.empty_like(whole))
    pair_cosines(pool, 256, partial)
    assert consolidation._clusters(pool, 12, params, rescaling, partial, wider) == labels
    assert len(set(labels)) < len(pool)


def test_a_large_problem_in_a_small_pool_is_not_cut_into_neighbourhood_sized_pieces():
    """A problem of 60 signals against neighbourhoods of 10: pair by pair its signals share few
    neighbours, but their cosines stand out from their densities, so they stay one report."""
    rng = np.random.default_rng(9)
    problem = around(np.eye(48)[0], 60, 0.1, rng)
    strangers = rng.standard_normal((200, 48))
    labels = cluster_pool(problem + list(strangers))
    assert len(set(labels[:60])) == 1 and len(set(labels)) == 201
    shares_only = ConsolidationParameters(link_margin=10.0)  # without the second criterion it falls apart
    assert len(set(cluster_pool(problem + list(strangers), shares_only)[:60])) > 5


def paired_problems(rng, pairs: int = 80) -> tuple[list[np.ndarray], list[int], list[np.ndarray]]:
    """(vectors, truth, centres): `pairs` pairs of neighbouring problems of 12 signals each, in 64
    dimensions, and each problem's centre."""
    vectors, truth, centres = [], [], []
    for pair in range(pairs):
        base = rng.standard_normal(64)
        base /= np.linalg.norm(base)
        for side in range(2):
            offset = rng.standard_normal(64)
            offset -= (offset @ base) * base
            centre = base + 1.5 * offset / np.linalg.norm(offset)
            centres.append(centre / np.linalg.norm(centre))
            vectors += around(centres[-1], 12, 0.06, rng)
            truth += [2 * pair + side] * 12
    return vectors, truth, centres


def test_neighbourhoods_are_narrower_than_the_problems_found(monkeypatch):
    """160 problems of 12 signals in a pool of 1,920, in pairs of neighbouring problems: neighbourhoods
    of 1% of the pool (19) reach into the neighbouring problem and merge a third of the pairs; narrowed
    to 0.8 of the problems the first clustering found (12 → 10), every problem is its own cluster."""
    vectors, truth, _ = paired_problems(np.random.default_rng(0))

    def mixed(labels) -> int:
        problems: dict[int, set[int]] = {}
        for label, problem in zip(labels, truth):
            problems.setdefault(label, set()).add(problem)
        return sum(1 for held in problems.values() if len(held) > 1)

    matrix = np.asarray(vectors)
    square = np.empty((len(matrix), len(matrix)))
    nearest = nearest_rows(matrix, 19, 256, square)
    wide = consolidation._clusters(matrix, 19, ConsolidationParameters(), pool_rescaling(matrix), square, nearest)
    assert mixed(wide) > 20 and consolidation.typical_problem_size(wide) == 12
    sizes = []
    clusters = consolidation._clusters
    monkeypatch.setattr(
        consolidation, "_clusters", lambda m, size, *rest: sizes.append(size) or clusters(m, size, *rest)
    )
    labels = cluster_pool(vectors)
    assert mixed(labels) == 0 and len(set(labels)) == 160
    assert sizes == [19, 10]  # the problems found at 10 are still 12: no third pass
    assert consolidation.typical_problem_size([0, 0, 1, 2, 2, 2, 3]) == 3  # one-signal clusters aside
    assert consolidation.typical_problem_size([0, 1, 2]) == 0


def test_neighbourhoods_narrow_until_the_problems_found_no_longer_call_for_it(monkeypatch):
    """As on Banking77 train texts, 30 per intent, whose first neighbourhood is 1.5 problems (45): each
    narrower clustering finds slightly narrower problems (32, 29, 28 signals at the median), so the
    neighbourhood narrows three times (45 → 26 → 23 → 22) and stops where 0.8 of the problems found is
    no narrower (0.8 × 28 = 22)."""
    found = {45: 32, 26: 29, 23: 28, 22: 28}  # the typical problem the clustering finds at each width
    sizes = []

    def clusters(matrix, size, *rest):
        sizes.append(size)
        return [i // found[size] for i in range(len(matrix))]

    monkeypatch.setattr(consolidation, "_clusters", clusters)
    vectors = np.random.default_rng(0).standard_normal((2310, 8))
    cluster_pool(vectors, ConsolidationParameters(neighbour_share=45 / 2310))
    assert sizes == [45, 26, 23, 22]


def test_fragments_attach_round_after_round_but_a_cluster_that_moved_or_received_never_votes_again():
    """A fragment whose nearest signals lie in another fragment joins the problem once that fragment has
    joined it (a later round, on the new labels); a cluster that moved in one round never votes again, so
    what joined it stays behind rather than being carried on (no chains)."""
    rng = np.random.default_rng(5)
    pool = np.asarray(around(np.eye(16)[0], 24, 0.02, rng))  # all close: only the votes decide
    bulk, first, second = list(range(8)), [8, 9], [10, 11]
    moving, riding = list(range(12, 19)), [19, 20, 21]
    alone = [22, 23]
    labels = [0] * 8 + [1] * 2 + [2] * 2 + [3] * 7 + [4] * 3 + [5, 6]
    nearest = {}  # each row's neighbourhood (itself first), 5 rows
    for row in bulk:
        nearest[row] = [row] + [b for b in bulk if b != row][:4]
    for row in first:  # mostly the bulk: joins in the first round
        nearest[row] = [row] + bulk[:4]
    for row in second:  # the other fragment's member first, then the bulk: joins in the second round
        nearest[row] = [row, second[0] if row != second[0] else second[1]] + first + bulk[:1]
    for row in moving:  # 7 signals whose neighbours are the larger bulk: moves in the first round
        nearest[row] = [row] + bulk[(row - 12) % 4 : (row - 12) % 4 + 4]
    for row in riding:  # 3 signals whose neighbours are in `moving`: join it in the same round
        nearest[row] = [row] + moving[:4]
    for row in alone:
        nearest[row] = [row] + riding + [alone[0] if row != alone[0] else alone[1]]
    neighbours = np.array([nearest[r] for r in range(24)])
    result = consolidation.attached_clusters(
        labels, neighbours, np.zeros(24), pool, ConsolidationParameters(), lambda c: c
    )
    assert [result[r] for r in bulk + first + second + moving] == [0] * 19
    assert [result[r] for r in riding] == [3] * 3  # `moving`'s label, which moved on without them
    assert [result[r] for r in alone] == [5, 6]


def test_the_average_linkage_is_scipys_tree_merge_for_merge_ties_included():
    """The linkage run in numpy (no scipy.cluster import in the code location) gives scipy's tree exactly:
    the same merges in the same rows, the same heights bit for bit, also where many distances tie."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    rng = np.random.default_rng(21)
    for trial in range(90):
        n = int(rng.integers(2, 120))
        pairs = n * (n - 1) // 2
        distances = (
            rng.random(pairs),
            rng.integers(0, 4, pairs) / 4,  # many ties
            np.maximum(1.0 - 1.3 * rng.random(pairs), 0.0),  # clipped at 0, as the consolidation's are
        )[trial % 3]
        expected = linkage(distances, "average")
        np.testing.assert_array_equal(consolidation._average_linkage(squareform(distances)), expected)


def test_shared_neighbours_are_the_counts_of_common_members():
    """The shares counted from the holders' lists are those of the neighbourhoods' 0/1 matrix product, for
    any rows (in any order, repeated or not) against the rows from any start on, hubs included."""
    from signals_assets.grouping.similarity_scale import shared_neighbours

    rng = np.random.default_rng(4)
    distinct = rng.standard_normal((70, 12))
    vectors = np.concatenate([distinct, distinct[:20]])  # duplicates: rows held by many neighbourhoods
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    neighbourhood, _ = neighbourhoods(vectors, 7, 16)
    members = np.zeros((90, 90))
    np.put_along_axis(members, neighbourhood.members, 1.0, axis=1)
    for rows, start in ((np.arange(90), 0), (np.arange(30, 45), 30), ([5, 80, 5], 3), ([89], 89)):
        expected = members[rows] @ members[start:].T / 7
        np.testing.assert_array_equal(shared_neighbours(neighbourhood, rows, start), expected)


def test_a_part_of_the_pool_sees_its_neighbourhoods_and_shared_counts_in_the_whole_pool():
    """`nearest_in_pool` for some rows gives those rows' neighbourhoods in the whole pool, and their shared
    counts (`Neighbourhoods` over the pool's ids) are the whole pool's, pair for pair."""
    from signals_assets.grouping.similarity_scale import Neighbourhoods, nearest_in_pool, shared_neighbours

    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((600, 24))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    whole_members, whole_cosines = nearest_rows(vectors, 15, 256)
    rows = np.sort(rng.choice(600, 90, replace=False))
    members, cosines = nearest_in_pool(vectors, rows, 15, block_rows=32)
    np.testing.assert_array_equal(members, whole_members[rows])
    np.testing.assert_allclose(cosines, whole_cosines[rows], atol=2e-9)
    whole_shared = shared_neighbours(Neighbourhoods(whole_members), np.arange(600))
    part_shared = shared_neighbours(Neighbourhoods(members, universe=600), np.arange(len(rows)))
    np.testing.assert_array_equal(part_shared, whole_shared[np.ix_(rows, rows)])


def history_and_wave(rng, wave: np.ndarray) -> tuple[list[PoolSignal], int, list[int]]:
    """(pool, stored, truth): 160 problems of 12 signals (`paired_problems`) consolidated into one report
    each, then `wave`'s signals, each a report of its own (as one-pass decisions may leave them)."""
    vectors, truth, _ = paired_problems(rng)
    labels = cluster_pool(vectors)
    pool = [PoolSignal(f"s{i}", f"r{label}", v, 0.5, "") for i, (v, label) in enumerate(zip(vectors, labels))]
    pool += [PoolSignal(f"w{i}", f"w{i}", v, 0.5, "") for i, v in enumerate(wave)]
    return pool, len(vectors), truth


def recorded_linkage_sizes(monkeypatch) -> list[int]:
    """The number of rows of each average linkage the consolidation runs from now on (appended as it runs)."""
    sizes: list[int] = []
    linkage = consolidation._average_linkage
    monkeypatch.setattr(consolidation, "_average_linkage", lambda square: sizes.append(len(square)) or linkage(square))
    return sizes


def test_a_small_wave_clusters_only_the_region_it_reaches_and_groups_it_as_the_whole_pool_would(monkeypatch):
    """A wave of 3 signals of one problem at a team of 1,920 consolidated signals: only the reports of the
    wave's nearest signals are clustered with it (a few dozen rows, not 1,920), each row seeing its
    neighbourhood in the whole pool, and the wave joins its problem's report exactly as when the whole
    pool is clustered; every other report is left as it was."""
    rng = np.random.default_rng(0)
    _, _, centres = paired_problems(np.random.default_rng(0))
    pool, stored, truth = history_and_wave(rng, np.asarray(around(centres[7], 3, 0.06, np.random.default_rng(1))))
    linkage_sizes = recorded_linkage_sizes(monkeypatch)
    region = consolidation.regroup_offline(pool, stored, ConsolidationParameters())
    assert linkage_sizes and max(linkage_sizes) < 100  # problem 7, its neighbour 6, the wave: a few dozen rows
    linkage_sizes.clear()
    whole = consolidation.regroup_offline(pool, stored, ConsolidationParameters(region_share=0.0))
    assert max(linkage_sizes) == len(pool)

    def reports(labels):
        return map_clusters(pool, labels, {p.report_id: 0 for p in pool[:stored]}, lambda seed, used: f"new-{seed}")

    assert reports(region) == reports(whole)
    final = reports(region)
    problem_report = {final[i] for i in range(stored) if truth[i] == 7}
    assert len(problem_report) == 1 and set(final[stored:]) == problem_report
    assert final[:stored] == [p.report_id for p in pool[:stored]]  # nothing earlier moved


def test_a_wave_that_reaches_much_of_the_pool_clusters_the_whole_pool(monkeypatch):
    """Signals scattered over the pool's problems reach more than `region_share` of it: the region would
    save little, so the whole pool is clustered (and confined to what the batch reaches as always); a
    pool below `region_from` is clustered whole too."""
    _, _, centres = paired_problems(np.random.default_rng(0))
    scattered = np.asarray(
        [around(centre, 1, 0.06, np.random.default_rng(i))[0] for i, centre in enumerate(centres[::2])]
    )
    pool, stored, _ = history_and_wave(np.random.default_rng(0), scattered)
    assert consolidation.cluster_around_batch([p.embedding for p in pool], [p.report_id for p in pool], stored) is None
    small = pool[:600] + pool[stored : stored + 3]
    assert consolidation.cluster_around_batch([p.embedding for p in small], [p.report_id for p in small], 600) is None
    linkage_sizes = recorded_linkage_sizes(monkeypatch)
    consolidation.regroup_offline(pool, stored, ConsolidationParameters())
    assert max(linkage_sizes) == len(pool)


def test_a_neighbour_outside_the_clustered_rows_votes_for_no_cluster():
    """Rows whose neighbourhoods lie mostly outside the rows clustered (`len(cut)` in `neighbours`) are not
    moved by those votes; a cluster pointing mostly at a larger one among the rows still joins it."""
    rng = np.random.default_rng(5)
    pool = np.asarray(around(np.eye(16)[0], 12, 0.02, rng))  # all close: only the votes decide
    labels = [0] * 8 + [1] * 2 + [2] * 2
    outside = len(labels)
    neighbours = [[row] + [b for b in range(8) if b != row][:4] for row in range(8)]
    neighbours += [[8, 0, 1, 2, 3], [9, 0, 1, 2, 3]]  # the bulk: joins it
    neighbours += [[10, outside, outside, outside, 0], [11, outside, outside, outside, 1]]  # mostly outside: stays
    result = consolidation.attached_clusters(
        labels, np.array(neighbours), np.zeros(12), pool, ConsolidationParameters(), lambda c: c
    )
    assert result == [0] * 10 + [2, 2]


def test_a_batch_read_from_its_region_joins_reports_whole_and_never_splits_one():
    """`joined_by_batch`: an earlier report mostly in a cluster with a batch signal joins it whole (C, and
    A with the rows the region put elsewhere); a report only partly there stays whole where it was (B);
    a batch signal whose cluster-mates' report joined nothing follows that report (12 follows A, the
    report of its one cluster-mate), one with no earlier cluster-mate is new (11)."""
    reports = ["A"] * 4 + ["B"] * 2 + ["C"] * 3 + ["D"] * 2
    stored = len(reports)
    cluster_of = {0: 0, 1: 0, 2: 0, 3: 1, 4: 0, 5: 2, 6: 3, 7: 3, 8: 4, 11: 0, 12: 3, 13: 5, 14: 1}
    labels = consolidation.joined_by_batch(reports + ["b"] * 4, stored, cluster_of)
    groups: dict[int, list[int]] = {}
    for row, label in enumerate(labels):
        groups.setdefault(label, []).append(row)
    assert sorted(groups.values()) == [[0, 1, 2, 3, 11, 14], [4, 5], [6, 7, 8, 12], [9, 10], [13]]


@pytest.mark.parametrize(("environment", "expected"), [({}, 4), ({"OPENBLAS_THREAD_TIMEOUT": "12"}, 12)])
def test_a_process_of_the_package_lets_blas_threads_sleep_unless_told_otherwise(environment, expected):
    """The value OpenBLAS itself runs with, read from the library numpy loaded (the numpy wheels' OpenBLAS
    exports it), in a process that imports the package before numpy, as every run worker does."""
    import os
    import subprocess
    import sys

    code = (
        "import ctypes, glob, os, signals_assets.grouping.consolidation, numpy\n"
        "[library] = glob.glob(os.path.join(os.path.dirname(numpy.__file__), os.pardir, 'numpy.libs', '*openblas*'))\n"
        "print(ctypes.CDLL(library).openblas_thread_timeout())"
    )
    inherited = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    result = subprocess.run(
        [sys.executable, "-c", code], env={**inherited, **environment}, capture_output=True, text=True, check=True
    )
    assert int(result.stdout) == expected
