"""Crash safety at length: kill -9 trials across every stage (tests/fault_harness.py).

Spreads `--kills` kills round-robin over the stages and the modes (the daemon on the shipped local
instance settings, `signals process`; `--production` adds trials of the daemon on the production
instance: Postgres and the Docker run launcher), `--per-trial` kills per trial (each before a new
wave of signals; the n-th arrival at a stage is drawn from the arrivals the trial's earlier runs saw
come, and a kill whose arrival did not come is retried at the first arrival of a fresh wave), then a
restart, a bounded wait to settle and the checks. With `--random-times` every kill is instead at a
delay drawn uniformly over the span the process is busy (the harness's `random` kills), so kills land
mid store write, sensor tick or run launch rather than at a stage boundary; and every `signals
emit-file` after a trial's first is killed at a random moment too, then run again whole. With
`--every-write` there is one trial per write that a first run makes to the store or the object store
(counted by a first run whose kill never comes; `signals process` unless `--modes daemon`, whose
run is the daemon until settled, its sensors' and run workers' writes counted together): trial n
kills it just before its n-th write, so every point between two writes is tried once
(`--write-stride k`: every k-th). Under the daemon the count is one run's: another run's timing can
make fewer writes, and a kill planned past them does not land. `--first-team-batch-limit N` (below
`--signals-per-wave`) keeps the first team a backlog, so the other team's waves get batches of their
own between its batches, and the kills land in those claims too. Prints one line per trial and a
summary table; `--json FILE` keeps every trial's result. Exit status 1 when any trial has a defect. Usage:
    .venv/bin/python benchmarks/fault_injection.py --kills 30 [--per-trial 2] [--seed 1] [--production] [--random-times]
    .venv/bin/python benchmarks/fault_injection.py --every-write --signals-per-wave 16 [--modes daemon] [--write-stride 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fault_harness import DEFECT_CHECKS, RANDOM, FaultTrial, local_instance_config, production_trial  # noqa: E402

from signals_assets.recovery.faults import STAGES  # noqa: E402

from conftest import CODE_IMAGE  # noqa: E402


def plan_trials(
    kills: int, per_trial: int, modes: list[str], rng: random.Random, random_times: bool = False
) -> list[tuple[str, list[str], int]]:
    """(mode, stages, seed) per trial; the trial picks each kill's arrival (or delay) from what it sees."""
    # Every stage once per round of len(STAGES) kills, in a shuffled order (so pairs vary).
    stages = [stage for _ in range(0, kills, len(STAGES)) for stage in rng.sample(STAGES, len(STAGES))][:kills]
    if random_times:
        stages = [RANDOM] * kills
    return [
        (modes[number % len(modes)], stages[start : start + per_trial], rng.randrange(2**32))
        for number, start in enumerate(range(0, kills, per_trial))
    ]


def writes_of_one_run(root: Path, mode: str, signals_per_wave: int) -> int:
    """How many writes (the `write` fault stage) the pipeline in `mode` makes on a trial's first wave;
    that run must research a report, or the writes of report runs would go untried."""
    trial = FaultTrial(root, mode, local_instance_config(), signals_per_wave=signals_per_wave)
    trial.emit_wave()
    writes, researched = trial.count_writes(timeout=600)
    if not researched:
        raise SystemExit(
            f"a first wave of {signals_per_wave} signals per team researched no report: "
            "raise --signals-per-wave (16 does)"
        )
    return writes


def summary(results: list) -> str:
    by_stage: dict[str, list[int]] = {stage: [0, 0] for stage in STAGES}
    for result in results:
        for kill in result.kills:
            counts = by_stage.setdefault(kill.stage.split(":")[0], [0, 0])
            counts[0] += 1
            counts[1] += int(kill.reached)
    lines = ["kills per stage (planned / landed): " + ", ".join(f"{s} {p}/{r}" for s, (p, r) in by_stage.items())]
    totals = {name: sum(len(getattr(r, name)) for r in results) for name in DEFECT_CHECKS}
    lines.append(
        f"trials {len(results)}, kills landed {sum(r for _, r in by_stage.values())}, "
        f"signals emitted {sum(r.emitted for r in results)}, in exactly one report "
        f"{sum(r.in_one_report for r in results)}, rejected {sum(r.rejected for r in results)}, "
        f"kills retried after a chosen arrival did not come {sum(bool(k.missed) for r in results for k in r.kills)}, "
        f"emit-file runs killed {sum(r.emits_killed for r in results)}"
    )
    lines.append(
        "defects: "
        + ", ".join(f"{name} {count}" for name, count in totals.items())
        + f", trials unsettled {sum(not r.settled for r in results)}"
        + f", process re-runs failed {sum('process_rerun_failed' in r.defects() for r in results)}"
    )
    settle = [r.settle_seconds for r in results]
    lines.append(f"settle seconds: max {max(settle):.0f}, mean {sum(settle) / len(settle):.0f}")
    delays = [float(k.arrival[:-1]) for r in results for k in r.kills if k.stage == RANDOM and k.reached]
    if delays:
        lines.append(f"random kill delays (s): min {min(delays):.1f}, max {max(delays):.1f}, n {len(delays)}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--per-trial", type=int, default=2)
    parser.add_argument("--modes", help="daemon, process or both (default); `process` with --every-write")
    parser.add_argument("--production", action="store_true", help="also daemon trials on Postgres + Docker")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--random-times", action="store_true", help="kill after a random delay over the busy span, not at stages"
    )
    parser.add_argument(
        "--every-write",
        action="store_true",
        help="one kill per trial: before every write of a first run in turn (of `signals process` unless --modes)",
    )
    parser.add_argument("--write-stride", type=int, default=1, help="with --every-write: every k-th write only")
    parser.add_argument("--first-write", type=int, default=1, help="with --every-write: the first write tried")
    parser.add_argument("--signals-per-wave", type=int, default=14, help="per team, before each kill and at the end")
    parser.add_argument(
        "--first-team-batch-limit",
        type=int,
        help="the first team's signals per batch (below --signals-per-wave: it keeps a backlog, and the other "
        "team's waves get batches of their own); not for --production",
    )
    parser.add_argument("--kill-timeout", type=float, default=240, help="seconds to wait for a stage")
    parser.add_argument("--settle-timeout", type=float, default=420)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the trials' folders (logs, store, instance)")
    args = parser.parse_args()
    modes = (args.modes or ("process" if args.every_write else "daemon,process")).split(",")
    modes += ["production"] if args.production else []
    if args.every_write:
        rng = random.Random(args.seed)
        trials = []
        for mode in modes:
            with tempfile.TemporaryDirectory(prefix="fault-injection-writes-") as tmp:
                writes = writes_of_one_run(Path(tmp), mode, args.signals_per_wave)
            print(f"{mode}: {writes} writes on a first wave of {args.signals_per_wave} signals per team")
            points = range(args.first_write, writes + 1, args.write_stride)
            trials += [(mode, [f"write:{n}"], rng.randrange(2**32)) for n in points]
    else:
        trials = plan_trials(args.kills, args.per_trial, modes, random.Random(args.seed), args.random_times)
    print(
        f"{len(trials)} trials, {sum(len(stages) for _, stages, _ in trials)} kills, on {platform.node()} ({platform.machine()}), "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        flush=True,
    )
    results = []
    with (
        contextlib.nullcontext(tempfile.mkdtemp(prefix="fault-injection-"))
        if args.keep
        else tempfile.TemporaryDirectory(prefix="fault-injection-") as tmp
    ):
        print(f"trial folders in {tmp}", flush=True)
        for number, (mode, stages, seed) in enumerate(trials, start=1):
            root = Path(tmp) / f"trial{number}"
            root.mkdir()
            started = time.monotonic()
            if mode == "production":
                with production_trial(root, CODE_IMAGE, args.signals_per_wave, seed) as trial:
                    result = trial.run(stages, args.kill_timeout, args.settle_timeout)
            else:
                trial = FaultTrial(
                    root,
                    mode,
                    local_instance_config(),
                    signals_per_wave=args.signals_per_wave,
                    seed=seed,
                    kill_emits=args.random_times,
                    first_team_batch_limit=args.first_team_batch_limit,
                )
                result = trial.run(stages, args.kill_timeout, args.settle_timeout)
            results.append(result)
            kills = " ".join(
                f"{k.arrival}{''.join(f'(after {m} missed)' for m in k.missed)}{'' if k.reached else '(not reached)'}"
                for k in result.kills
            )
            print(
                f"trial {number} {mode:<10} kills: {kills}; {time.monotonic() - started:.0f}s; emitted {result.emitted}, "
                f"one report {result.in_one_report}, rejected {result.rejected}, emits killed {result.emits_killed}; defects {result.defects() or 'none'}; "
                f"load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    print(summary(results))
    if args.json:
        args.json.write_text(json.dumps([r.as_dict() for r in results], indent=1, default=str))
    return 1 if any(r.defects() for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
