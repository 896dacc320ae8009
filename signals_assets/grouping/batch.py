"""One batch's grouping: read what the store knew before the batch, decide each team's part, build the rows.

The store is held only to read and is released while the provider decides (it may call a model);
the caller writes the rows (`grouping.store.write_batch`).
"""

from __future__ import annotations

import functools
import itertools
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

from signals_assets.grouping import store
from signals_assets.grouping.decisions import Provider
from signals_assets.grouping.engine import BatchSignal, consolidate, plan_batch
from signals_assets.grouping.similarity_scale import pool_scale
from signals_assets.partition_keys import batch_time
from signals_assets.recovery.faults import pause_point
from signals_assets.storage.clickhouse import StoreSession

if TYPE_CHECKING:
    from signals_assets.llm.embeddings import Embedded


class Embedder(Protocol):
    @property
    def model_name(self) -> str: ...

    def embed_isolating_refused(self, texts: Sequence[str]) -> Embedded: ...


def group_batch(
    session: Callable[[], AbstractContextManager[StoreSession]],
    batch: str,
    team_ids: list[int],
    window_days: int,
    provider: Provider,
    embedder: Embedder,
) -> tuple[list[dict], list[dict], list[dict]]:
    """Assignment rows, event rows and promotions for one batch (of `team_ids`, or every team when empty).

    Only signals assigned within `window_days` before the batch are candidates."""
    at = batch_time(batch)
    since = at - timedelta(days=window_days)
    with session() as db:
        by_team = store.batch_signals(db, batch, embedder.model_name, team_ids)
    by_team = {team: _with_probes(signals, provider, embedder) for team, signals in by_team.items()}
    with session() as db:
        for team in by_team:
            store.repair_vector_deltas(db, team, batch)
        contexts = {
            team: store.read_team(
                db,
                team,
                batch,
                embedder.model_name,
                since,
                signals,
                provider.needs_texts,
                provider.consolidation.pool_limit if provider.consolidation else 0,
            )
            for team, signals in by_team.items()
        }
    plans = {}
    for team, context in contexts.items():
        before = dict(context.states)
        # the team's similarity scale from its open pool and this batch: decisions adapt to the data
        scale = pool_scale([p.embedding for p in context.open_pool] + [s.embedding for s in context.signals])
        plan = plan_batch(
            context.signals,
            context.candidates,
            context.stats,
            context.states,
            functools.partial(provider.decide, scale=scale),
            context.texts,
        )
        pause_point("group")  # decided in memory, nothing written
        if provider.consolidation:
            plan = consolidate(
                plan,
                context.signals,
                context.open_pool,
                before,
                context.states,
                provider.consolidation,
                provider.regroup_pool,
                context.past_rounds,
            )
            pause_point("consolidate")  # consolidated in memory, nothing written
        plans[team] = plan
    return store.batch_rows(batch, at, plans)


def _with_probes(signals: list[BatchSignal], provider: Provider, embedder: Embedder) -> list[BatchSignal]:
    """Each signal with its search queries embedded as extra probes (outside any store session). A query
    the embedding server refuses for what it holds is left out: the signal still has its own embedding."""
    queries = [provider.search_queries(s) for s in signals]
    flat = [q for qs in queries for q in qs]
    if not flat:
        return signals
    embedded = embedder.embed_isolating_refused(flat)
    probes = dict(zip(embedded.kept(range(len(flat))), embedded.vectors))  # by the query's number in `flat`
    starts = itertools.accumulate((len(qs) for qs in queries), initial=0)
    return [
        BatchSignal(
            s.signal_id,
            s.team_id,
            s.description,
            s.weight,
            s.embedding,
            tuple(probes[number] for number in range(start, start + len(qs)) if number in probes),
        )
        for s, qs, start in zip(signals, queries, starts)
    ]
