"""The grouping engine's OpenAI path end to end: chat decisions and embeddings from a local server
speaking the OpenAI protocol (a keyword-matching stand-in for the model)."""

import json
import re
import socket
from typing import Callable

import dagster as dg
import pytest

from signals_assets.cli.commands import execute_request
from signals_assets.cli.main import main
from signals_assets.definitions import defs
from signals_assets.ingestion import inbox
from signals_assets.sensors.report_promotion import promotion_work
from signals_assets.settings import load_settings
from signals_assets.storage.clickhouse import open_chdb
from signals_assets.storage.facts import latest_report_states
from tests.openai_protocol_server import (
    EMBEDDINGS,
    OpenAIProtocolServer,
    Reply,
    content_filtered,
    error,
    merge_groups,
)

from conftest import CARD_DECLINED, PASSWORD_RESET, emit_texts, group_one_batch

TOPIC_WORDS = {"declined", "password"}


def topic(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w in TOPIC_WORDS}


def fenced(text: str, label: str) -> list[str]:
    pattern = r"\[BEGIN DATA (\w+): " + label + r"\]\n(.*?)\n\[END DATA \1\]"
    return [body for _, body in re.findall(pattern, text, re.S)]


def keyword_model(body: dict) -> dict:
    """Joins a candidate that shares the new signal's topic word, else starts a group; confirms a merge of
    two groups that share a topic word."""
    system, user = body["messages"][0]["content"], body["messages"][1]["content"]
    groups = merge_groups(body)
    if groups is not None:
        first, second = (set().union(*map(topic, texts)) for texts in groups)
        return {"reason": "scripted", "same_problem": bool(first & second)}
    if "these five" in system:
        return {"safe": True}
    if "inbox entry for a report" in system:
        return {
            "title": "Fix " + " ".join(sorted(topic(user))),
            "summary": "Users hit one problem.",
            "actionability": "immediately_actionable",
            "actionability_reason": "a concrete defect",
            "priority": "P2",
            "priority_reason": "several users",
        }
    if "search queries" in system:
        return {"queries": [" ".join(fenced(user, "signal")[0].split()[:4])]}
    if "belongs to an existing group" in system:
        new = topic(fenced(user, "new signal")[0])
        ids = [json.loads(quoted) for quoted in re.findall(r'Candidate \d+: signal_id=("[^"]*")', user)]
        texts = [t for t in fenced(user, r"description of candidate \d+")]
        for signal_id, text in zip(ids, texts):
            if new & topic(text):
                return {"reason": "same topic", "match_type": "existing", "signal_id": signal_id}
        return {"reason": "new topic", "match_type": "new", "title": "New problem", "summary": "A new problem."}
    return {"pr_title": "Fix " + " ".join(sorted(topic(user))), "specific_enough": True, "reason": "one fix"}


@pytest.fixture
def openai_server(signals_home, monkeypatch):
    with OpenAIProtocolServer(chat_default=keyword_model, embedding_dimension=16) as server:
        monkeypatch.setenv("SIGNALS_LLM_PROVIDER", "openai")
        monkeypatch.setenv("SIGNALS_EMBEDDER", "openai")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        yield server


def test_grouping_and_reports_through_an_openai_compatible_server(object_store, team, openai_server):
    definitions = defs()
    with dg.instance_for_test() as instance:
        _, result = group_one_batch(object_store, instance, definitions, CARD_DECLINED + PASSWORD_RESET)
        promoted = [
            p["report_id"]
            for e in result.asset_materializations_for_node("report_assignments")
            for p in e.metadata["promoted_reports"].data
        ]
        instance.add_dynamic_partitions("reports", promoted)
        for report_id in promoted:
            assert (
                definitions.resolve_job_def("report_job")
                .execute_in_process(partition_key=report_id, instance=instance)
                .success
            )

    settings = load_settings()
    with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
        groups = db.query("SELECT report_id, groupArray(signal_id) AS ids FROM report_assignments GROUP BY report_id")
        models = db.query("SELECT DISTINCT model, dimension FROM signal_embeddings")
        titles = db.query("SELECT report_id, title FROM reports WHERE status = 'ready' ORDER BY title")
    assert sorted(len(g["ids"]) for g in groups) == [3, 3] and len(promoted) == 2
    assert models == [{"model": "text-embedding-3-small", "dimension": 16}]
    assert len(titles) == 2

    chats = openai_server.requests()
    steps = [
        (
            "merge"
            if merge_groups(r.body)
            else "safety"
            if "these five" in r.text()
            else "summary"
            if "inbox entry" in r.text()
            else "search"
            if "search queries" in r.text()
            else "match"
            if "existing group" in r.text()
            else "specificity"
        )
        for r in chats
    ]
    assert steps.count("search") == 6 and steps.count("match") == 5 and steps.count("specificity") == 4
    assert steps.count("merge") == 1  # the two reports are proposed for a merge, and the model refuses
    # one verdict per signal, then one report-level verdict and one summary per report
    assert steps.count("safety") == 6 + 2 and steps.count("summary") == 2
    assert all(r.body["response_format"] == {"type": "json_object"} for r in chats)
    embedded = [text for r in openai_server.requests(EMBEDDINGS) for text in r.body["input"]]
    assert set(CARD_DECLINED + PASSWORD_RESET) <= set(embedded)  # signals and their query probes


def test_a_password_in_the_base_url_is_read_at_run_launch_and_never_shown(
    object_store, team, openai_server, monkeypatch
):
    """OPENAI_BASE_URL with a user and password (a proxy's basic auth) is no value of the embedder's and
    the LLM's config: the Dagster UI shows those, and every run keeps them in the job snapshot."""
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    # ending in a line break, as a secret mounted from a file often does (the settings strip it)
    base_url = openai_server.base_url.replace("http://", "http://proxy-user:pr0xy-pa55word@")
    monkeypatch.setenv("OPENAI_BASE_URL", base_url + "\n")
    definitions = defs()
    shown = serialize_value(RepositorySnap.from_def(definitions.get_repository_def()))
    with dg.instance_for_test() as instance:
        _, result = group_one_batch(object_store, instance, definitions, CARD_DECLINED + PASSWORD_RESET)
        kept = serialize_value(instance.get_job_snapshot(result.dagster_run.job_snapshot_id))
    assert "pr0xy-pa55word" not in shown and "pr0xy-pa55word" not in kept
    assert openai_server.requests() and openai_server.requests(EMBEDDINGS)  # through the URL read at launch


def never_joining_model(body: dict) -> dict:
    """The keyword model, except that every signal starts its own report: only the merge step groups."""
    if "belongs to an existing group" in body["messages"][0]["content"]:
        return {"reason": "scripted split", "match_type": "new", "title": "New problem", "summary": "A problem."}
    return keyword_model(body)


def test_reports_the_model_confirms_as_one_problem_are_merged_and_a_re_run_changes_nothing(
    object_store, team, openai_server, monkeypatch
):
    """Batch 1 (merge step off) leaves two reports of the declined card and one of the password reset;
    batch 2 brings one more signal of each and the model confirms the merges of same-topic reports:
    the older reports take the new signals, one card report absorbs the other. Re-running batch 2
    rebuilds the same result."""
    openai_server.chat_default = never_joining_model
    monkeypatch.setenv("SIGNALS_LLM_MERGE_PROPOSALS", "0")
    settings = load_settings()

    def store(sql: str) -> list[dict]:
        with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
            return db.query(sql)

    def groups() -> list[list[str]]:
        """The live reports' signal texts."""
        rows = store(
            "SELECT arraySort(groupArray(s.description)) AS texts FROM current_assignments AS a "
            "INNER JOIN signals AS s ON s.signal_id = a.signal_id WHERE a.deleted = 0 GROUP BY a.report_id"
        )
        return sorted(r["texts"] for r in rows)

    with dg.instance_for_test() as instance:
        group_one_batch(object_store, instance, defs(), [CARD_DECLINED[0], CARD_DECLINED[1], PASSWORD_RESET[0]])
        first = {r["report_id"] for r in store("SELECT report_id FROM current_assignments")}
        assert len(first) == 3

        monkeypatch.setenv("SIGNALS_LLM_MERGE_PROPOSALS", "15")
        definitions = defs()
        emit_texts(object_store, [CARD_DECLINED[2], PASSWORD_RESET[1]], start=10)
        batch = inbox.claim_pending(object_store, 100, None).new_batches[0]
        instance.add_dynamic_partitions("signal_batches", [batch])
        job = definitions.resolve_job_def("signal_batch_job")
        asked = len(openai_server.requests())
        assert job.execute_in_process(partition_key=batch, instance=instance).success
        merges = [merge_groups(r.body) for r in openai_server.requests()[asked:] if merge_groups(r.body)]
        # the pairs with one of the two new reports: 4 + 3; the three old reports' pairs were not asked again
        assert len(merges) == 7
        after = groups()
        assert after == sorted([sorted(CARD_DECLINED), sorted(PASSWORD_RESET[:2])])
        reports = {r["report_id"]: r for r in store("SELECT report_id, status, signal_count FROM reports")}
        [absorbed] = [r for r in reports.values() if r["status"] == "suppressed"]
        assert absorbed["report_id"] in first and absorbed["signal_count"] == 0
        survivors = {r["report_id"] for r in reports.values() if r["signal_count"]}
        assert survivors == first - {absorbed["report_id"]}  # the older reports keep their ids
        [detail] = [
            r["detail"]
            for r in store(
                f"SELECT detail FROM report_events WHERE report_id = '{absorbed['report_id']}' AND status = 'suppressed'"
            )
        ]
        assert detail.startswith("merged into ") and detail.removeprefix("merged into ") in survivors

        assert job.execute_in_process(partition_key=batch, instance=instance).success
        assert groups() == after
        assert store("SELECT report_id, status, signal_count FROM reports ORDER BY report_id") == sorted(
            reports.values(), key=lambda r: r["report_id"]
        )
        assert len(store(f"SELECT * FROM report_events WHERE report_id = '{absorbed['report_id']}'")) == 2


def model_titling_password_reports_with_unstorable_characters(body: dict) -> dict:
    """The keyword model, except that a new report and a summary about password resets get a title with
    a lone surrogate and a NUL (JSON escapes, valid in an answer; neither can be stored)."""
    result = keyword_model(body)
    if "title" in result and "password" in body["messages"][1]["content"].lower():
        result["title"] += " \ud800\x00"
    return result


def group_and_run_the_reports_in_one_run(object_store, between: Callable[[], None] = lambda: None) -> None:
    """The card and password signals grouped, then (after `between`, with the settings read again) their
    two reports judged and researched by one run."""
    with dg.instance_for_test() as instance:
        group_one_batch(object_store, instance, defs(), CARD_DECLINED + PASSWORD_RESET)
        between()
        work = promotion_work(instance, object_store, 3, 0)
        [request] = work.run_requests(instance.get_dynamic_partitions("reports"), reports_per_run=50)
        instance.add_dynamic_partitions("reports", list(work.partitions_request().partition_keys))
        assert execute_request(defs().resolve_job_def("report_job"), request, instance).success


def stored(sql: str) -> list[dict]:
    settings = load_settings()
    with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
        return db.query(sql)


def test_a_model_title_the_store_cannot_take_is_stored_with_replacements_and_fails_no_other_report(
    object_store, team, openai_server
):
    openai_server.chat_default = model_titling_password_reports_with_unstorable_characters
    group_and_run_the_reports_in_one_run(object_store)
    titles = stored("SELECT title FROM report_summaries ORDER BY title")
    assert titles == [{"title": "Fix declined"}, {"title": "Fix password \ufffd\ufffd"}]


def server_refusing_password_summaries_with_an_unstorable_error(body: dict) -> dict | Reply:
    """The keyword model, except that the summary of the password report gets an HTTP 400 whose body, a
    JSON string, holds a lone surrogate (the client quotes such a body as it is in its error)."""
    system, user = body["messages"][0]["content"], body["messages"][1]["content"]
    if "inbox entry for a report" in system and "password" in user.lower():
        return Reply(status=400, body=json.dumps("bad request \ud800"))
    return keyword_model(body)


def test_a_failure_reason_the_store_cannot_take_is_stored_escaped_and_fails_no_other_report(
    object_store, team, openai_server
):
    openai_server.chat_default = server_refusing_password_summaries_with_an_unstorable_error
    group_and_run_the_reports_in_one_run(object_store)
    states = stored(f"SELECT status, detail FROM ({latest_report_states()}) ORDER BY status")
    assert [state["status"] for state in states] == ["failed", "ready"]
    assert states[0]["detail"].endswith(
        "HTTP 400 from " + openai_server.base_url + "/: Error code: 400 - bad request \\ud800"
    )


def test_a_report_run_waits_for_an_unreachable_server_once_and_records_every_report_failed(
    object_store, team, openai_server, monkeypatch
):
    with socket.socket() as closed:  # a port nothing listens on: every attempt is refused
        closed.bind(("127.0.0.1", 0))
        unreachable = f"http://127.0.0.1:{closed.getsockname()[1]}/v1"
    group_and_run_the_reports_in_one_run(object_store, lambda: monkeypatch.setenv("OPENAI_BASE_URL", unreachable))
    states = stored(f"SELECT status, detail FROM ({latest_report_states()}) ORDER BY detail")
    assert [state["status"] for state in states] == ["failed", "failed"]
    assert "APIConnectionError talking to " + unreachable in states[0]["detail"]
    assert states[0]["detail"].endswith("(gave up after 4 attempts)")
    assert "not sent: an earlier call reached the server in none of its attempts" in states[1]["detail"]


def model_derailed_by_password_signals(body: dict) -> dict | Reply:
    """The keyword model, except that it never answers a search-query or match request about a password
    signal with valid JSON (what a signal written to derail the model may achieve)."""
    system, user = body["messages"][0]["content"], body["messages"][1]["content"]
    if ("search queries" in system or "belongs to an existing group" in system) and "password" in user.lower():
        return Reply(content="Sure! Here is my answer: the password one.")
    return keyword_model(body)


def test_signals_the_model_gives_no_valid_answer_for_are_decided_offline_and_fail_no_batch(
    object_store, team, openai_server
):
    openai_server.chat_default = model_derailed_by_password_signals
    with dg.instance_for_test() as instance:
        group_one_batch(object_store, instance, defs(), CARD_DECLINED + PASSWORD_RESET)  # the batch succeeds
    groups = stored(
        "SELECT arraySort(groupArray(s.description)) AS texts FROM current_assignments AS a "
        "INNER JOIN signals AS s ON s.signal_id = a.signal_id WHERE a.deleted = 0 GROUP BY a.report_id"
    )
    card_groups = [group["texts"] for group in groups if set(group["texts"]) <= set(CARD_DECLINED)]
    assert card_groups == [sorted(CARD_DECLINED)]  # the model's decisions
    assert sorted(text for group in groups for text in group["texts"]) == sorted(CARD_DECLINED + PASSWORD_RESET)


POISONED = "My order confirmation shows POISONWORD instead of the total."


def filtering_poison(text: str) -> Reply | None:
    """Azure's content filter, which refuses any request holding a text with the poison word."""
    return content_filtered() if "POISONWORD" in text else None


BATCH_TABLES = {
    "signals": "batch_key, signal_id",
    "rejected_signals": "batch_key, signal_id",
    "signal_embeddings": "batch_key, signal_id",
    "report_assignments": "batch_key, seq",
    "report_events": "report_id, at, seq",
}


def batch_tables() -> dict[str, list[dict]]:
    return {table: stored(f"SELECT * FROM {table} ORDER BY {order}") for table, order in BATCH_TABLES.items()}


def run_batch_again(instance, batch: str) -> dg.ExecuteInProcessResult:
    result = defs().resolve_job_def("signal_batch_job").execute_in_process(partition_key=batch, instance=instance)
    assert result.success
    return result


def passed_checks(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.check_name for e in result.get_asset_check_evaluations() if e.passed}


def test_a_signal_the_content_filter_refuses_is_rejected_and_the_rest_is_grouped_and_researched(
    object_store, team, openai_server, capsys
):
    openai_server.refuse_embedding = filtering_poison
    with dg.instance_for_test() as instance:
        batch, result = group_one_batch(object_store, instance, defs(), CARD_DECLINED + PASSWORD_RESET + [POISONED])
        # the invariants hold: the refused signal is no accepted signal waiting for an embedding
        assert {"one_embedding_per_accepted_signal", "one_current_assignment_per_signal"} <= passed_checks(result)
        [metadata] = [e.metadata for e in result.asset_materializations_for_node("signal_embeddings")]
        assert (metadata["embedded"].value, metadata["refused"].value) == (6, 1)
        first = batch_tables()
        # re-materialised (screened again, refused again, grouped again): identical tables
        assert passed_checks(run_batch_again(instance, batch)) == passed_checks(result)
        assert batch_tables() == first

    [rejected] = first["rejected_signals"]
    assert (rejected["reason"], rejected["description"], rejected["batch_key"]) == (
        "embedding_refused",
        POISONED,
        batch,
    )
    assert rejected["detail"].startswith("the embedding server refused this text alone, and embedded others: ")
    assert "content filter refused the request (HTTP 400" in rejected["detail"]
    assert "triggering content management policy" in rejected["detail"]  # the server's own message
    assert POISONED not in {row["description"] for row in first["signals"]}
    assert len(first["signals"]) == len(first["signal_embeddings"]) == 6
    groups = stored(
        "SELECT arraySort(groupArray(s.description)) AS texts FROM current_assignments AS a "
        "INNER JOIN signals AS s ON s.signal_id = a.signal_id WHERE a.deleted = 0 GROUP BY a.report_id"
    )
    assert sorted(group["texts"] for group in groups) == sorted([sorted(CARD_DECLINED), sorted(PASSWORD_RESET)])

    assert main(["status", "--team-id", "1", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["accepted"], status["rejected"], status["assigned"]) == (6, 1, 6)
    assert status["rejected_by_reason"] == {"embedding_refused": 1}
    assert main(["status", "--team-id", "1"]) == 0
    assert "rejected: 1 embedding_refused" in capsys.readouterr().out

    with dg.instance_for_test() as instance:  # the two reports are researched as usual
        work = promotion_work(instance, object_store, 3, 0)
        [request] = work.run_requests([], reports_per_run=50)
        instance.add_dynamic_partitions("reports", list(work.partitions_request().partition_keys))
        assert execute_request(defs().resolve_job_def("report_job"), request, instance).success
    assert [state["status"] for state in stored(f"SELECT status FROM ({latest_report_states()})")] == ["ready"] * 2


def test_a_search_query_the_content_filter_refuses_is_left_out_and_its_signal_grouped(
    object_store, team, openai_server
):
    """The chat model's search queries are embedded as extra probes: one the filter refuses (not the signal's
    own text) costs that probe only, not the batch."""
    refused_query = " ".join(CARD_DECLINED[0].split()[:4])  # what keyword_model asks to search for it
    openai_server.refuse_embedding = lambda text: content_filtered() if text == refused_query else None
    with dg.instance_for_test() as instance:
        _, result = group_one_batch(object_store, instance, defs(), CARD_DECLINED + PASSWORD_RESET)
        assert result.success
    embedded = [text for request in openai_server.requests(EMBEDDINGS) for text in request.body["input"]]
    assert refused_query in embedded  # the probe was asked for, and refused
    groups = stored(
        "SELECT arraySort(groupArray(s.description)) AS texts FROM current_assignments AS a "
        "INNER JOIN signals AS s ON s.signal_id = a.signal_id WHERE a.deleted = 0 GROUP BY a.report_id"
    )
    assert sorted(group["texts"] for group in groups) == sorted([sorted(CARD_DECLINED), sorted(PASSWORD_RESET)])
    assert stored("SELECT count() AS n FROM rejected_signals") == [{"n": 0}]


def test_a_batch_of_one_signal_the_server_refuses_ends_with_that_signal_rejected(object_store, team, openai_server):
    """Alone in its batch, the signal is set apart once the server embeds a control text: the batch
    finishes with nothing to group, rather than failing until it is parked."""
    openai_server.refuse_embedding = filtering_poison
    with dg.instance_for_test() as instance:
        batch, result = group_one_batch(object_store, instance, defs(), [POISONED])
        assert {"one_embedding_per_accepted_signal", "one_current_assignment_per_signal"} <= passed_checks(result)
        first = batch_tables()
        run_batch_again(instance, batch)
        assert batch_tables() == first
    assert [row["reason"] for row in first["rejected_signals"]] == ["embedding_refused"]
    assert first["signals"] == first["signal_embeddings"] == first["report_assignments"] == []
    assert inbox.unfinished_batches(object_store) == []


def test_a_move_cut_short_then_re_executed_from_its_step_leaves_no_signal_both_accepted_and_rejected(
    object_store, team, openai_server, monkeypatch
):
    """A kill between the rejection's insert and the signal's removal, then the run re-executed from the
    embedding step (Dagster's run retry, or the UI) while the server now embeds the text: the signal is
    grouped and its stale rejection is gone."""
    from signals_assets.storage.clickhouse import StoreSession

    openai_server.refuse_embedding = filtering_poison
    remove = StoreSession.delete_where

    def killed_before_removing_the_signal(self, table, where, params=None):
        if table == "signals" and "signal_id IN" in where:  # the move's removal, not the buffering's write
            raise RuntimeError("killed between the move's two statements")
        return remove(self, table, where, params)

    emit_texts(object_store, CARD_DECLINED + [POISONED])
    batch = inbox.claim_pending(object_store, 100, None).new_batches[0]
    job = defs().resolve_job_def("signal_batch_job")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("signal_batches", [batch])
        with monkeypatch.context() as killed:
            killed.setattr(StoreSession, "delete_where", killed_before_removing_the_signal)
            assert not job.execute_in_process(partition_key=batch, instance=instance, raise_on_error=False).success
        both = "SELECT count() AS n FROM {table} WHERE description = '%s'" % POISONED
        assert [stored(both.format(table=t))[0]["n"] for t in ("signals", "rejected_signals")] == [1, 1]

        openai_server.refuse_embedding = None
        result = job.execute_in_process(
            partition_key=batch,
            instance=instance,
            asset_selection=[
                key for key in job.asset_layer.executable_asset_keys if key != dg.AssetKey("buffered_signals")
            ],
        )
        assert result.success
    assert stored("SELECT reason FROM rejected_signals") == []
    assigned = stored(
        "SELECT s.description AS description FROM current_assignments AS a "
        "INNER JOIN signals AS s ON s.signal_id = a.signal_id WHERE a.deleted = 0"
    )
    assert POISONED in {row["description"] for row in assigned} and len(assigned) == 4


def test_a_server_that_refuses_every_embedding_parks_the_batch_with_the_reason_and_rejects_nothing(
    object_store, team, openai_server, capsys, monkeypatch
):
    """A wrong model name or a broken proxy answering 400 to everything is the server's fault, not the
    signals': the run fails, the batch is parked with the reason, and `signals unpark` recovers it."""
    monkeypatch.setenv("SIGNALS_MAX_ATTEMPTS", "1")
    openai_server.refuse_embedding = lambda text: error(
        400, "Invalid model name passed in model=text-embedding-3-small"
    )
    emit_texts(object_store, CARD_DECLINED + [POISONED])
    assert main(["process"]) == 1  # the attempt fails
    assert main(["process"]) == 1  # no attempt left: parked
    capsys.readouterr()
    assert main(["status", "--team-id", "1", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["parked"] == 1 and status["rejected"] == 0 and status["accepted"] == 4
    [parked] = status["unfinished_work"]
    assert "refused a control text too: the server, not the text, is at fault" in parked
    assert "Invalid model name" in parked
    [batch] = inbox.unfinished_batches(object_store, include_parked=True)

    openai_server.refuse_embedding = filtering_poison  # the model name fixed: only the poisoned text is refused
    assert main(["unpark", batch]) == 0
    assert main(["process"]) == 0
    capsys.readouterr()
    assert main(["status", "--team-id", "1", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["accepted"], status["assigned"], status["rejected_by_reason"]) == (3, 3, {"embedding_refused": 1})


SMALL_CONTEXT_CHARS = 12_000  # a chat model with a 4k-token context
LONG_SIGNAL = "The CSV export times out for large accounts. " * 440  # ~20,000 characters: a valid signal


def small_context_model(body: dict) -> dict | Reply:
    """The keyword model behind a server that refuses a prompt past its context, as vLLM answers (HTTP 400)."""
    if sum(len(message["content"] or "") for message in body["messages"]) > SMALL_CONTEXT_CHARS:
        return error(400, "This model's maximum context length is 4096 tokens. However, you requested 6000 tokens")
    return keyword_model(body)


def test_a_signal_past_the_chat_models_context_is_rejected_and_fails_no_other_signal(
    object_store, team, openai_server, capsys, monkeypatch
):
    """The safety judge sent the whole text and the 400 failed the batch (retried, then parked with every
    other signal in it); now the refusal of that text alone fails it closed, as an invalid verdict does."""
    monkeypatch.setenv("SIGNALS_MAX_ATTEMPTS", "1")
    openai_server.chat_default = small_context_model
    emit_texts(object_store, CARD_DECLINED + PASSWORD_RESET + [LONG_SIGNAL])
    assert main(["process"]) == 0
    capsys.readouterr()
    assert main(["status", "--team-id", "1", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["accepted"], status["assigned"], status["rejected_by_reason"]) == (6, 6, {"unsafe": 1})
    assert status["unsafe_by_kind"] == {"unverified": 1} and status["parked"] == 0


def test_a_chat_server_that_refuses_every_request_fails_the_run_and_rejects_nothing(
    object_store, team, openai_server, capsys, monkeypatch
):
    """A 400 to the control request too is the server's fault (a wrong model name), not the signals'."""
    monkeypatch.setenv("SIGNALS_MAX_ATTEMPTS", "1")
    openai_server.chat_default = lambda body: error(400, "Invalid model name passed in model=gpt-4.1-mini")
    emit_texts(object_store, CARD_DECLINED)
    assert main(["process"]) == 1  # the attempt fails
    assert main(["process"]) == 1  # no attempt left: parked
    capsys.readouterr()
    assert main(["status", "--team-id", "1", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["accepted"], status["rejected"], status["parked"]) == (0, 0, 1)
    [parked] = status["unfinished_work"]
    assert "Invalid model name" in parked
