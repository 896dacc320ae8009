"""The report's Markdown in the Dagster UI: readable, complete, and safe from what signals contain."""

import json
import re
from pathlib import Path

import dagster as dg
import mistune

from signals_assets.cli.main import main
from signals_assets.definitions import defs
from signals_assets.reports.markdown import EXCERPT_CHARS, inline_text, render_report_markdown

from conftest import CARD_DECLINED, PASSWORD_RESET, emit_texts

HOSTILE = [
    "<script>alert('x')</script> & <img src=x onerror=alert(1)>",
    "[click me](javascript:alert(1)) and ![pixel](https://evil.example/p.png)",
    "see https://evil.example/login or www.evil.example or admin@evil.example",
    "cell | break | here\n# Heading injected\n\n- list item\n```\ncode fence\n```",
    "`inline code` **bold** _em_ ~~gone~~ <b>bold</b> &amp; \\ backslash",
    "line one\r\nline two\u202eevil\x1b[31m",
]

# GitHub-flavoured Markdown as the UI renders it, with raw HTML passed through: the strictest reader.
render_html = mistune.create_markdown(escape=False, plugins=["table", "strikethrough", "url"])


def view(signals: list[dict], findings: list[dict], title: str = "Card payments declined") -> dict:
    return {
        "report_id": "r1-0123456789abcdef",
        "status": "ready",
        "title": title,
        "summary": "Card payments are declined at checkout.",
        "judgement": {
            "priority": "P1",
            "priority_reason": "many customers",
            "actionability": "immediately_actionable",
            "actionability_reason": "the signals describe a defect",
            "safety": "safe",
            "safety_kind": "",
        },
        "signals": signals,
        "research": {
            "research_round": 1,
            "status": "ready",
            "repository": "/repos/shop",
            "reason": "best match",
            "log_key": "research_logs/r1-0123456789abcdef/round-1-abc.jsonl",
            "findings": findings,
        },
    }


def text_of(html: str) -> str:
    """The visible text of rendered HTML (tags dropped, the entities the escaping uses decoded)."""
    text = re.sub(r"<[^>]+>", "", html)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")


def test_hostile_signal_text_renders_as_plain_text():
    signals = [
        {"source_product": "zendesk", "source_type": "ticket", "source_id": f"<b>{i}</b>|x", "description": text}
        for i, text in enumerate(HOSTILE)
    ]
    findings = [{"file": "a|b.py", "start_line": 3, "end_line": 9, "reason": "<script>x</script> [l](http://x)"}]
    html = render_html(render_report_markdown(view(signals, findings, title="# <i>Title</i> [x](y)")))
    # No markup came from the signals: the only tags are the report's own structure.
    assert set(re.findall(r"<(\w+)", html)) <= {
        "h2",
        "h3",
        "p",
        "ul",
        "li",
        "strong",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "em",
    }
    assert "<a " not in html and "<img" not in html and "<script" not in html and "<h1" not in html
    # Every signal is one table row of three cells (no `|` or newline broke out of its cell).
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    assert [len(re.findall(r"<td", row)) for row in rows if "<td" in row] == [3] * len(HOSTILE) + [3]
    visible = text_of(html)
    assert "<script>alert('x')</script>" in visible and "[click me](javascript:alert(1))" in visible
    assert "https://evil.example/login" in visible and "cell | break | here # Heading injected" in visible
    assert "\u202e" not in visible and "\x1b" not in visible


def test_long_signal_text_is_cut_to_an_excerpt():
    text = "word " * 500
    excerpt = inline_text(text, EXCERPT_CHARS)
    assert excerpt.endswith("…") and len(excerpt) <= EXCERPT_CHARS
    assert inline_text("a*b") == "a\\*b" and inline_text("x<y & z") == "x&lt;y &amp; z"


def test_report_materialisations_carry_the_report_as_markdown(capsys, signals_home, team, object_store):
    emit_texts(object_store, CARD_DECLINED + PASSWORD_RESET)
    assert main(["process"]) == 0
    capsys.readouterr()
    main(["list-reports", "--team-id", "1", "--json"])
    report = json.loads(capsys.readouterr().out)["reports"][0]
    instance = dg.DagsterInstance.get()
    pages = {}
    for asset in ("report_summaries", "report_research"):
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[report["id"]]), limit=1
        ).records
        materialization = records[0].asset_materialization
        assert materialization is not None
        value = materialization.metadata["report"]
        assert isinstance(value, dg.MarkdownMetadataValue)
        pages[asset] = text_of(render_html(value.md_str))
    summary_page, research_page = pages["report_summaries"], pages["report_research"]
    for page in pages.values():
        assert report["title"].rstrip("…") in page and report["summary"].rstrip("…") in page
        assert f"Priority: {report['priority']}" in page and report["actionability_reason"] in page
        assert all(text in page for text in CARD_DECLINED) or all(text in page for text in PASSWORD_RESET)
    assert "Not researched yet" in summary_page
    finding = report["research"]["findings"][0]
    assert finding["file"] in research_page and f"{finding['start_line']}–{finding['end_line']}" in research_page
    assert f"Research log: {report['research']['log_key']}" in research_page


def test_every_asset_links_to_its_source_file():
    for node in defs().resolve_asset_graph().asset_nodes:
        references = node.metadata["dagster/code_references"].code_references
        files = [Path(reference.file_path) for reference in references]
        assert files and all(path.is_file() for path in files), node.key
        if node.group_name == "sql_models":  # the model's SQL, then the Python that runs it
            assert files[0].name == f"{node.key.path[-1]}.sql", node.key


def test_report_metadata_and_run_logs_show_reordering_and_control_characters_as_escapes(
    capsys, signals_home, team, object_store
):
    """The UI shows metadata and log messages as plain text, where a bidirectional override reorders what
    follows it: the title taken from such signals, and every other text, carries visible escapes instead."""
    hostile = [text.replace("declined", "declined \u202eevil\u2066 \x1b[31m") for text in CARD_DECLINED]
    emit_texts(object_store, hostile + PASSWORD_RESET)
    assert main(["process"]) == 0
    capsys.readouterr()
    instance = dg.DagsterInstance.get()
    texts, titles = [], []
    for record in instance.fetch_materializations(dg.AssetKey("report_summaries"), limit=100).records:
        materialization = record.asset_materialization
        assert materialization is not None
        titles.append(materialization.metadata["title"].value)
        texts += [value.text for value in materialization.metadata.values() if isinstance(value, dg.TextMetadataValue)]
    assert sorted(titles) == [
        "My card payment was declined \\u202eevil\\u2066 \\x1b[31m at checkout.",
        "Password reset emails are not arriving for me.",
    ]
    logged = [record.user_message for run in instance.get_runs() for record in instance.all_logs(run.run_id)]
    unsafe = re.compile("[\x1b\u202e\u2066]")
    assert [text for text in texts + logged if unsafe.search(text)] == []
