"""Planning `signals process`'s batches: `inbox.plan_batches` over a large synthetic inbox.

    .venv/bin/python benchmarks/claim_plan.py [--keys 200000] [--teams 50] [--max-signals 500] [--max-per-team 500]

The inbox holds `--keys` keys over `--teams` team folders, backlogs uneven (team i's share grows
with i, so the smaller teams run out early and the last batches come from a few teams), names
time-ordered across teams as the emit facade writes them. It prints the seconds `plan_batches`
takes (no object is moved: the claim's moves cost the same either way), and then those of the
definition it replaced (round-robin over every team's list re-filtered by the keys taken so far,
per batch, the teams without a backlog alone where `goes_alone` says so), checking both give the same
batches.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def synthetic_inboxes(keys: int, teams: int, max_per_team: int) -> list[tuple[list[str], int]]:
    rng = random.Random(0)
    team_of = rng.choices(range(teams), weights=[team + 1 for team in range(teams)], k=keys)
    lists: list[list[str]] = [[] for _ in range(teams)]
    for moment, team in enumerate(team_of):
        lists[team].append(f"inbox/{team + 1}/{moment:012d}-{rng.getrandbits(32):08x}.json")
    # The loose (pre-team) queue first, empty, as `_team_inboxes` lists it.
    return [([], max_per_team)] + [(keys_of_team, max_per_team) for keys_of_team in lists]


def refiltering_every_list(inboxes: list[tuple[list[str], int]], max_signals: int) -> list[list[str]]:
    from signals_assets.fairness import round_robin
    from signals_assets.ingestion.inbox import _inbox_folder, _queues, goes_alone

    batches, served = [], set()
    while queues := _queues(inboxes):
        backlogged = {_inbox_folder(keys[0]) for keys, limit in inboxes if len(keys) > limit}
        if goes_alone(backlogged, len(queues), served):
            queues = [queue for queue in queues if _inbox_folder(queue[0]) not in backlogged]
        batches.append(round_robin(queues, max_signals))
        taken = set(batches[-1])
        served = {_inbox_folder(key) for key in taken}
        inboxes = [([key for key in keys if key not in taken], limit) for keys, limit in inboxes]
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=200_000)
    parser.add_argument("--teams", type=int, default=50)
    parser.add_argument("--max-signals", type=int, default=500)
    parser.add_argument("--max-per-team", type=int, default=500)
    args = parser.parse_args()
    from signals_assets.ingestion.inbox import plan_batches

    inboxes = synthetic_inboxes(args.keys, args.teams, args.max_per_team)
    started = time.perf_counter()
    planned = list(plan_batches(inboxes, args.max_signals, set()))
    print(f"plan_batches: {len(planned)} batches of {args.keys} keys in {time.perf_counter() - started:.3f} s")
    started = time.perf_counter()
    replaced = refiltering_every_list(inboxes, args.max_signals)
    print(f"re-filtering every list per batch (replaced): {time.perf_counter() - started:.3f} s")
    if replaced != planned:
        sys.exit("the two plans differ")


if __name__ == "__main__":
    main()
