"""Settings from the environment at their edges: a value the platform cannot use is refused when the
settings are read, with a message naming the variable, not later by whatever first uses it."""

import re
import subprocess
import sys

import pytest

from signals_assets.settings import load_settings

from conftest import REPO_ROOT


@pytest.mark.parametrize(
    "name, value, message",
    [
        # docker's nano_cpus is an integer: int(inf * 1e9) fails every research run
        ("SIGNALS_SANDBOX_CPUS", "inf", "SIGNALS_SANDBOX_CPUS='inf' must be a number from 0.01 to 9223372036"),
        ("SIGNALS_SANDBOX_CPUS", "1e400", "SIGNALS_SANDBOX_CPUS='1e400' must be a number from 0.01"),
        # past a signed 64-bit nano_cpus, or below Docker's least quota: the engine refuses every container
        ("SIGNALS_SANDBOX_CPUS", "1e17", "SIGNALS_SANDBOX_CPUS='1e17' must be a number from 0.01 to 9223372036"),
        ("SIGNALS_SANDBOX_CPUS", "0.001", "SIGNALS_SANDBOX_CPUS='0.001' must be a number from 0.01"),
        # in bytes past a signed 64-bit integer: the agent's setrlimit raises OverflowError, the engine refuses
        (
            "SIGNALS_SANDBOX_MEMORY_MB",
            "99999999999999999",
            "SIGNALS_SANDBOX_MEMORY_MB='99999999999999999' must be at most 8796093022207",
        ),
        # the name goes into CREATE DATABASE and USE as it is
        ("SIGNALS_CLICKHOUSE_DATABASE", "a;b", "SIGNALS_CLICKHOUSE_DATABASE='a;b' must be a ClickHouse identifier"),
        ("SIGNALS_CLICKHOUSE_DATABASE", "signals-prod", "SIGNALS_CLICKHOUSE_DATABASE='signals-prod' must be"),
        ("SIGNALS_CLICKHOUSE_DATABASE", "1signals", "SIGNALS_CLICKHOUSE_DATABASE='1signals' must be"),
        # boto3 refuses it on every call, saying only "Parameter validation failed:" on its first line
        ("SIGNALS_S3_BUCKET", "s3://signals/prod", "SIGNALS_S3_BUCKET='s3://signals/prod' must be a bucket name"),
        ("SIGNALS_S3_BUCKET", "my bucket", "SIGNALS_S3_BUCKET='my bucket' must be a bucket name"),
        # the index refuses MiniLM's 384-dimensional embeddings: every batch would fail until parked
        ("SIGNALS_CLICKHOUSE_VECTOR_DIMENSIONS", "7", "SIGNALS_CLICKHOUSE_VECTOR_DIMENSIONS=7 must be 384"),
        # "never retire by age" as a huge number: the cut-off would be a date before year 1
        ("SIGNALS_RETIRE_REPORTS_AFTER_DAYS", "740000", "SIGNALS_RETIRE_REPORTS_AFTER_DAYS='740000' must be at most"),
        ("SIGNALS_RETIRE_BATCHES_AFTER_DAYS", "36501", "SIGNALS_RETIRE_BATCHES_AFTER_DAYS='36501' must be at most"),
    ],
)
def test_a_value_the_platform_cannot_use_is_refused_naming_the_variable(
    signals_home, monkeypatch, name, value, message
):
    monkeypatch.setenv("SIGNALS_CLICKHOUSE_VECTOR_INDEX", "hnsw")  # what the dimensions are for
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_settings()


def test_the_largest_sandbox_limits_are_taken_and_the_agent_sets_them(signals_home, monkeypatch):
    monkeypatch.setenv("SIGNALS_SANDBOX_MEMORY_MB", "8796093022207")
    monkeypatch.setenv("SIGNALS_SANDBOX_CPUS", "0.01")
    settings = load_settings()
    assert (settings.sandbox_memory_mb, settings.sandbox_cpus) == (8796093022207, 0.01)
    check = "import sys; sys.path.insert(0, 'sandbox'); import agent; agent.limit_memory(int(sys.argv[1]))"
    limited = subprocess.run([sys.executable, "-c", check, str(settings.sandbox_memory_mb)], cwd=REPO_ROOT)
    assert limited.returncode == 0


def test_bucket_names_boto3_takes_are_taken(signals_home, monkeypatch):
    monkeypatch.setenv("SIGNALS_OBJECT_STORE", "s3")
    for bucket in ("signals", "Legacy_Bucket.2019", "arn:aws:s3:us-east-1:123456789012:accesspoint/signals"):
        monkeypatch.setenv("SIGNALS_S3_BUCKET", bucket)
        assert load_settings().s3_bucket == bucket


def test_an_index_of_other_dimensions_is_taken_for_the_openai_embedder(signals_home, monkeypatch):
    for name, value in {
        "SIGNALS_CLICKHOUSE_VECTOR_INDEX": "hnsw",
        "SIGNALS_CLICKHOUSE_VECTOR_DIMENSIONS": "1536",
        "SIGNALS_EMBEDDER": "openai",
        "OPENAI_API_KEY": "sk-test",
    }.items():
        monkeypatch.setenv(name, value)
    assert load_settings().vector_index_dimensions == 1536


@pytest.mark.parametrize("name", ["a-file", "a-file/signals"])
def test_a_signals_home_that_is_or_is_under_a_file_is_refused_naming_it(signals_home, monkeypatch, name):
    """Under a file, SIGNALS_HOME was taken, and the first command failed writing into it."""
    signals_home.mkdir(exist_ok=True)
    (signals_home / "a-file").write_text("")
    monkeypatch.setenv("SIGNALS_HOME", str(signals_home / name))
    with pytest.raises(
        ValueError, match=rf"^SIGNALS_HOME='.*/{name}' must be a folder \(or not exist yet\), not a file$"
    ):
        load_settings()


def test_a_database_name_of_letters_digits_and_underscores_is_taken(signals_home, monkeypatch):
    monkeypatch.setenv("SIGNALS_CLICKHOUSE_DATABASE", "signals_prod_2")
    assert load_settings().clickhouse_database == "signals_prod_2"


@pytest.mark.parametrize("name", ["SIGNALS_LLM_PROVIDER", "SIGNALS_EMBEDDER"])
@pytest.mark.parametrize("key", [None, " "])
def test_the_openai_provider_without_an_api_key_is_refused_naming_the_variable(signals_home, monkeypatch, name, key):
    monkeypatch.setenv(name, "openai")
    if key is None:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    else:
        monkeypatch.setenv("OPENAI_API_KEY", key)
    with pytest.raises(ValueError, match=f"^OPENAI_API_KEY must be set when {name}=openai$"):
        load_settings()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert load_settings().uses_openai


@pytest.mark.parametrize("length", [129, 248])
def test_a_database_name_too_long_for_clickhouses_file_names_is_refused_naming_the_variable(
    signals_home, monkeypatch, length
):
    """Past about 180 characters ClickHouse refused the first table, past 247 the store failed with an
    internal error (a file name too long); the variable was named by neither."""
    monkeypatch.setenv("SIGNALS_CLICKHOUSE_DATABASE", "d" * length)
    with pytest.raises(
        ValueError, match=rf"^SIGNALS_CLICKHOUSE_DATABASE='d{{40}}'… must be at most 128 characters, got {length}$"
    ):
        load_settings()
    monkeypatch.setenv("SIGNALS_CLICKHOUSE_DATABASE", "d" * 128)
    assert load_settings().clickhouse_database == "d" * 128


def test_a_signals_home_of_an_unknown_users_home_is_refused_naming_it(signals_home, monkeypatch):
    """`~nobody-here/data` made Path.expanduser raise RuntimeError: the CLI's "internal error", naming nothing."""
    monkeypatch.setenv("SIGNALS_HOME", "~no-such-user-input42/data")
    with pytest.raises(ValueError, match=r"^SIGNALS_HOME='~no-such-user-input42/data' names the home folder of a user"):
        load_settings()
