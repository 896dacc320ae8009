"""scripts/dev, the README's first command, as a user starts it."""

import os

from dagster_dev import running_dagster_dev

from conftest import SETTINGS_VARIABLES


def test_a_relative_signals_home_is_the_callers_folders(tmp_path):
    """Dagster takes only an absolute DAGSTER_HOME: a relative SIGNALS_HOME (and the DAGSTER_HOME beside it)
    is made absolute from the folder the script is started in, as the CLI reads it."""
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES and k != "DAGSTER_HOME"}
    env["SIGNALS_HOME"] = "relative_home"
    with running_dagster_dev(env, tmp_path / "dev.log", script_from=tmp_path):
        home = tmp_path / "relative_home"
        assert (home / "objects" / "teams" / "1.json").is_file()
        assert (home / "dagster_home" / "dagster.yaml").is_file()
