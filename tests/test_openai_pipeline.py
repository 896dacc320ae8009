"""The grouping engine's OpenAI path end to end: chat decisions and embeddings from a local server
speaking the OpenAI protocol (a keyword-matching stand-in for the model)."""

import json
import re

import dagster as dg
import pytest

from signals_assets.definitions import defs
from signals_assets.settings import load_settings
from signals_assets.storage.clickhouse import open_chdb
from tests.openai_protocol_server import EMBEDDINGS, OpenAIProtocolServer, merge_groups

from conftest import CARD_DECLINED, PASSWORD_RESET, group_one_batch

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
