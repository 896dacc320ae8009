"""The local run launcher: Dagster's default, telling each run which process launched it.

A run whose worker died was cut off by a restart when the process that launched it died too: then its
attempt is not the unit's failure, and a run left STARTING with no worker will get none. The code
server a sensor runs in cannot tell that by its own start: dagster-daemon starts a new one every
60 s. Named in deploy/dagster.local.yaml; imported by the instance (daemon, webserver, run workers).
"""

import os
from collections.abc import Mapping

from dagster._core.launcher import DefaultRunLauncher
from dagster._core.launcher.base import LaunchRunContext

# "<pid>/<run id>": the launching process, and the run it was written for (Dagster's retries copy
# their parent's tags, so a copy names another run and is ignored).
LAUNCHER_TAG = "signals/launcher"
# The host of that process, for a launcher whose workers run elsewhere (recovery/run_launcher.py): its pid
# means something only on this host.
LAUNCHER_HOST_TAG = "signals/launcher_host"


def launcher_pid(run_id: str, tags: Mapping[str, str]) -> int | None:
    """The pid of the process that launched run `run_id`, if it recorded one."""
    pid, _, tagged_run = tags.get(LAUNCHER_TAG, "").partition("/")
    return int(pid) if tagged_run == run_id and pid.isdigit() else None


class LocalRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher that tags every run with the launching process's pid before starting it."""

    def launch_run(self, context: LaunchRunContext) -> None:
        run_id = context.dagster_run.run_id
        self._instance.add_run_tags(run_id, {LAUNCHER_TAG: f"{os.getpid()}/{run_id}"})
        super().launch_run(context)
