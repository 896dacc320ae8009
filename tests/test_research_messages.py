"""The research agent's Pipes messages are read a whole line at a time: a message caught while it is
being written, or a line that is no message, loses nothing else; its result is taken only in the
agent's shape."""

import json
import threading
import time

import dagster as dg
import pytest
from dagster_pipes import PipesDefaultMessageWriter

from signals_assets.research.message_file import POLL_SECONDS, WholeLineFileMessageReader, read_whole_lines
from signals_assets.research.outcome import MAX_REASON_CHARS, SandboxResearchError, research_outcome


class RecordingHandler:
    def __init__(self):
        self.messages: list[dict] = []
        self.failures: list[str] = []

    def handle_message(self, message: dict) -> None:
        self.messages.append(message)

    def report_pipes_framework_exception(self, origin: str, exc_info) -> None:
        self.failures.append(f"{origin}: {exc_info[0].__name__}: {exc_info[1]}")


def custom(value) -> dict:
    return {"__dagster_pipes_version": "0.1", "method": "report_custom_message", "params": {"payload": value}}


def read_while_written(tmp_path, writes: list[bytes]) -> RecordingHandler:
    """Append `writes` one at a time, each after the reader has polled the file as it stood."""
    path = tmp_path / "messages"
    path.write_bytes(b"")
    handler, closed = RecordingHandler(), threading.Event()
    reader = threading.Thread(target=read_whole_lines, args=(str(path), handler, closed))
    reader.start()
    for data in writes:
        with open(path, "ab") as file:
            file.write(data)
        time.sleep(20 * POLL_SECONDS)
    closed.set()
    reader.join(timeout=10)
    assert not reader.is_alive()
    return handler


def test_a_message_read_while_half_written_arrives_whole_and_the_next_ones_too(tmp_path):
    result = json.dumps(custom({"status": "ready", "findings": ["é" * 3000]}), ensure_ascii=False).encode()
    # Cut inside the two bytes of an "é": the reader sees half a line and half a character.
    cut = result.index("é".encode()) + 1
    handler = read_while_written(
        tmp_path,
        [
            json.dumps(custom("first")).encode() + b"\n" + result[:cut],
            result[cut:] + b"\n",
            b'{"method": "closed", "params": {}}\n',
        ],
    )
    assert handler.failures == []
    assert handler.messages == [custom("first"), json.loads(result), {"method": "closed", "params": {}}]


def test_a_line_that_is_no_message_is_reported_and_reading_goes_on(tmp_path):
    handler = read_while_written(tmp_path, [b"not json\n", b"[1, 2]\n", json.dumps(custom("after")).encode() + b"\n"])
    assert handler.messages == [custom("after")]
    assert len(handler.failures) == 2, handler.failures
    assert "JSONDecodeError" in handler.failures[0]
    assert "a Pipes message is a JSON object, got list" in handler.failures[1]


def test_a_message_cut_short_when_the_writer_ended_is_reported(tmp_path):
    handler = read_while_written(tmp_path, [json.dumps(custom("whole")).encode() + b"\n" + b'{"method": "repo'])
    assert handler.messages == [custom("whole")]
    assert len(handler.failures) == 1 and "JSONDecodeError" in handler.failures[0]


def test_a_pipes_session_receives_what_the_dagster_pipes_writer_appends(tmp_path):
    """The params the reader gives a session are the ones `dagster_pipes`' file writer expects."""
    from dagster_pipes import PipesFileMessageWriterChannel

    received = []

    @dg.asset
    def researched(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        with dg.open_pipes_session(
            context=context,
            context_injector=dg.PipesFileContextInjector(str(tmp_path / "context.json")),
            message_reader=WholeLineFileMessageReader(),
        ) as session:
            path = session.message_reader_params[PipesDefaultMessageWriter.FILE_PATH_KEY]
            for payload in ({"status": "ready"}, "x" * 20_000):
                PipesFileMessageWriterChannel(path).write_message(custom(payload))
        received.extend(session.get_custom_messages())
        return dg.MaterializeResult()

    assert dg.materialize([researched]).success
    assert received == [{"status": "ready"}, "x" * 20_000]


AGENT_RESULT = {
    "status": "ready",
    "repository": "shop",
    "repository_ranking": [{"name": "shop", "score": 2.5, "reason": "best file billing.py"}],
    "findings": [
        {"file": "billing/\udcff.py", "start_line": 3, "end_line": 12, "score": 2.5, "reason": "matches card"}
    ],
    "confidence": "high",
    "reason": "shop is the only candidate repository; " + "x" * 3000,
}


def test_the_agents_result_is_taken_as_it_is_shaped_by_the_agent():
    outcome = research_outcome([{"other": 1}, AGENT_RESULT], [], "1-r", "docker", max_files=5, repositories=["shop"])
    assert (outcome.status, outcome.repository, outcome.confidence) == ("ready", "shop", "high")
    assert outcome.findings == AGENT_RESULT["findings"]  # the file name exactly, lone surrogate and all
    assert outcome.repository_ranking == AGENT_RESULT["repository_ranking"]
    assert len(outcome.reason) == MAX_REASON_CHARS
    pending = {
        "status": "pending_input",
        "repository": None,
        "repository_ranking": [],
        "findings": [],
        "confidence": "low",
    }
    assert research_outcome([pending], [], "1-r", "subprocess", 5, []).repository is None


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"findings": "AB"}, "findings must be a list, not str"),
        ({"findings": ["billing.py"]}, r"findings\[0\] must be an object, not str"),
        ({"findings": [{}] * 6}, "findings must have at most 5 entries, not 6"),
        (
            {"findings": [{**AGENT_RESULT["findings"][0], "start_line": 0}]},
            r"findings\[0\].start_line must be a positive",
        ),
        (
            {"findings": [{**AGENT_RESULT["findings"][0], "end_line": True}]},
            r"findings\[0\].end_line must be a positive",
        ),
        (
            {"findings": [{**AGENT_RESULT["findings"][0], "end_line": 2}]},
            r"findings\[0\].end_line must not come before",
        ),
        (
            {"findings": [{**AGENT_RESULT["findings"][0], "score": float("nan")}]},
            r"findings\[0\].score must be a finite",
        ),
        ({"findings": [{**AGENT_RESULT["findings"][0], "file": ""}]}, r"findings\[0\].file must be a non-empty string"),
        (
            {"findings": [{**AGENT_RESULT["findings"][0], "file": "a/" * 2049}]},
            r"findings\[0\].file must be at most 4096",
        ),
        ({"findings": [{**AGENT_RESULT["findings"][0], "reason": {"x": 1}}]}, r"findings\[0\].reason must be a string"),
        ({"repository_ranking": 7}, "repository_ranking must be a list, not int"),
        ({"repository_ranking": [{"name": "/etc", "score": 1, "reason": ""}]}, r"repository_ranking\[0\].name must be"),
        ({"repository": "other"}, "repository must be one of None, shop, not 'other'"),
        ({"confidence": {"x": 1}}, "confidence must be one of high, low"),
        ({"reason": ["r"]}, "reason must be a string, not list"),
    ],
)
def test_a_result_not_shaped_as_the_agents_fails_the_research_naming_the_field_and_the_rule(change, error):
    """The sandbox's output is not trusted: what a compromised agent sends must not reach the store, where
    the report pages of every run holding the report would fail to render it."""
    with pytest.raises(SandboxResearchError, match=f"^research agent reported a malformed result: {error}") as failure:
        research_outcome([{**AGENT_RESULT, **change}], [{"type": "console"}], "1-r", "docker", 5, ["shop"])
    assert failure.value.log_lines == [{"type": "console"}]
