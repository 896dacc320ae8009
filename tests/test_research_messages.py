"""The research agent's Pipes messages are read a whole line at a time: a message caught while it is
being written, or a line that is no message, loses nothing else."""

import json
import threading
import time

import dagster as dg
from dagster_pipes import PipesDefaultMessageWriter

from signals_assets.research.message_file import POLL_SECONDS, WholeLineFileMessageReader, read_whole_lines


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
