"""Report runs with a given research sandbox, in this process or (as a script) in a child process
that a test can interrupt or kill: `python tests/sandbox_runs.py REPORT_ID SANDBOX_FIELDS_JSON`."""

import json
import sys

import dagster as dg

from signals_assets.definitions import defs
from signals_assets.resources.sandbox import SandboxResource


def definitions_with_sandbox(**sandbox_fields) -> dg.Definitions:
    """The code location with its `sandbox` resource replaced."""
    base = defs()
    return dg.Definitions(
        assets=base.assets,
        jobs=base.jobs,
        sensors=base.sensors,
        resources={**base.resources, "sandbox": SandboxResource(**sandbox_fields)},
    )


def run_report(instance: dg.DagsterInstance, report_id: str, **sandbox_fields):
    job = definitions_with_sandbox(**sandbox_fields).resolve_job_def("report_job")
    return job.execute_in_process(partition_key=report_id, instance=instance, raise_on_error=False)


if __name__ == "__main__":
    with dg.DagsterInstance.get() as instance:
        run_report(instance, sys.argv[1], **json.loads(sys.argv[2]))
