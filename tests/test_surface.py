"""The code location's public surface (what the Dagster UI and run history see: assets, jobs,
sensors, checks, resource keys) against tests/data/surface.json, so a change to it shows in review.

Only names the UI shows are recorded, never a module path, so moving code does not change it.
After an intended change, rewrite the snapshot and commit it with the change:

    SIGNALS_UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest tests/test_surface.py
"""

import difflib
import json
import os
from pathlib import Path

import dagster as dg
import pytest

from signals_assets.definitions import defs

SNAPSHOT = Path(__file__).parent / "data" / "surface.json"
UPDATE_VARIABLE = "SIGNALS_UPDATE_SNAPSHOT"
KIND_TAG_PREFIX = "dagster/kind/"


def text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def automation_label(condition: dg.AutomationCondition | None) -> str | None:
    """The condition's label (`eager`), or its whole structure when it has none."""
    return None if condition is None else condition.get_label() or str(condition)


def surface(definitions: dg.Definitions) -> dict:
    graph = definitions.resolve_asset_graph()
    assets = {}
    for node in graph.asset_nodes:
        assets[node.key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "description": node.description,
            "deps": sorted(key.to_user_string() for key in node.parent_keys),
            "partitions": text_or_none(node.partitions_def),
            "backfill_policy": text_or_none(node.backfill_policy),
            "pools": sorted(node.pools),
            "automation_condition": automation_label(node.automation_condition),
            "tags": {k: v for k, v in node.tags.items() if not k.startswith(KIND_TAG_PREFIX)},
            "owners": list(node.owners),
        }
    checks = {}
    for key in graph.asset_check_keys:
        spec = graph.get_check_spec(key)
        checks[key.to_user_string()] = {"description": spec.description, "blocking": spec.blocking}
    jobs = {}
    for job in definitions.resolve_all_job_defs():
        if job.name.startswith("__"):  # Dagster's implicit asset job, not one of ours
            continue
        asset_keys = sorted(key.to_user_string() for key in job.asset_layer.executable_asset_keys)
        jobs[job.name] = {
            "description": job.description,
            "assets": asset_keys,
            "ops": [] if asset_keys else sorted(node.name for node in job.nodes),
            "partitions": text_or_none(job.partitions_def),
            "executor": job.executor_def.name,
            "tags": dict(job.tags),
        }
    sensors = {}
    for sensor in definitions.sensors or []:
        sensors[sensor.name] = {
            "description": sensor.description,
            "jobs": sorted(target.job_name for target in sensor.targets),
            "default_status": sensor.default_status.name,
            "minimum_interval_seconds": sensor.minimum_interval_seconds,
            "type": sensor.sensor_type.name,
        }
    return {
        "assets": assets,
        "asset_checks": checks,
        "jobs": jobs,
        "sensors": sensors,
        "resources": sorted((definitions.resources or {}).keys()),
    }


def as_text(value: dict) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def mismatch(recorded: str, current: str) -> str | None:
    """None when equal, else a unified diff of the snapshot against the current surface and how to update."""
    if recorded == current:
        return None
    diff = "".join(
        difflib.unified_diff(
            recorded.splitlines(keepends=True),
            current.splitlines(keepends=True),
            fromfile=f"{SNAPSHOT.name} (committed)",
            tofile="current surface",
        )
    )
    return (
        f"The code location's public surface changed:\n{diff}\nIf the change is intended, update the "
        f"snapshot and commit it: {UPDATE_VARIABLE}=1 .venv/bin/python -m pytest tests/test_surface.py"
    )


def test_public_surface_matches_the_snapshot(signals_home):
    definitions = defs()
    dg.Definitions.validate_loadable(definitions)  # what `dagster definitions validate` checks
    current = as_text(surface(definitions))
    if os.environ.get(UPDATE_VARIABLE) == "1":
        SNAPSHOT.write_text(current)
    problem = mismatch(SNAPSHOT.read_text() if SNAPSHOT.exists() else "", current)
    if problem:
        pytest.fail(problem, pytrace=False)


def test_a_changed_surface_fails_with_a_diff_and_the_way_to_update(signals_home):
    recorded = surface(defs())
    changed = json.loads(json.dumps(recorded))
    changed["sensors"]["signal_inbox_sensor"]["minimum_interval_seconds"] = 99
    del changed["assets"]["inbox"]

    problem = mismatch(as_text(recorded), as_text(changed))

    assert problem is not None
    assert '-    "inbox": {' in problem
    assert '+      "minimum_interval_seconds": 99,' in problem
    assert f"{UPDATE_VARIABLE}=1 .venv/bin/python -m pytest tests/test_surface.py" in problem
    assert mismatch(as_text(recorded), as_text(recorded)) is None
