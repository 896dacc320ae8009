"""The research agent: pure ranking on a small fake repository, then full runs through Dagster Pipes."""

import importlib.util
import json
import os
import random
import shutil
import signal
import string
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest

from signals_assets.research.context import repository_candidates
from signals_assets.research.outcome import SandboxResearchError
from signals_assets.resources.sandbox import AGENT_SCRIPT, SandboxResource

from conftest import CARD_DECLINED, PASSWORD_RESET, read_json_lines


def load_agent():
    spec = importlib.util.spec_from_file_location("research_agent", AGENT_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module while the file executes
    spec.loader.exec_module(module)
    return module


agent = load_agent()

CARD_PAYMENTS = '''\
"""Billing helpers."""

from decimal import Decimal


def format_amount(amount: Decimal, currency: str) -> str:
    return f"{amount:.2f} {currency}"


def refund_invoice(invoice, ledger):
    ledger.credit(invoice.customer, invoice.total)
    invoice.status = "refunded"
    return invoice


def authorise_card_payment(card, amount, gateway):
    """Ask the issuer to authorise a card payment at checkout."""
    response = gateway.authorise(card.token, amount)
    if response.declined:
        raise CardPaymentDeclined(response.decline_code)
    return response.authorisation_id
'''
AUTHORISE_LINE = CARD_PAYMENTS.splitlines().index("def authorise_card_payment(card, amount, gateway):") + 1
DECLINED_LINE = AUTHORISE_LINE + 4
LAST_LINE = len(CARD_PAYMENTS.splitlines())


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, body in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, bytes):
            path.write_bytes(body)
        else:
            path.write_text(textwrap.dedent(body))
    return root


@pytest.fixture
def shop(tmp_path) -> Path:
    """The repository the card report is about, plus decoys the agent must not read."""
    decoy = "card payment declined at checkout " * 10
    root = write_tree(
        tmp_path / "shop",
        {
            "billing/card_payments.py": CARD_PAYMENTS,
            "auth/password_reset.py": """
            def send_password_reset_email(user, mailer):
                mailer.send(user.email, "Reset your password", create_reset_token(user))
            """,
            "search/query.py": "def search_products(query):\n    return index.lookup(query.lower())\n",
            "README.md": "# Shop\n\nThe storefront service.\n",
            "billing/__init__.py": "",
            "node_modules/payments-sdk/card_payments.js": decoy,
            ".git/COMMIT_EDITMSG": decoy,
            "assets/card_declined.png": decoy.encode(),
            "data/declines.dat": b"\x00\x01" + decoy.encode(),
            "fixtures/card_payments_dump.txt": decoy * 4000,  # > 1 MB
        },
    )
    outside = write_tree(tmp_path / "outside", {"card_payments.txt": decoy})
    (root / "billing" / "linked_card_payments.txt").symlink_to(outside / "card_payments.txt")
    return root


@pytest.fixture
def docs_site(tmp_path) -> Path:
    return write_tree(
        tmp_path / "docs_site",
        {
            "guides/getting_started.md": "# Getting started\n\nInstall the theme and build the pages.\n",
            "guides/integrations.md": "# Integrations\n\nAccepting payments is covered in the API reference.\n",
            "theme/layout.html": "<html><body>{{ content }}</body></html>\n",
        },
    )


def card_report(signal_count: int = 3) -> dict:
    descriptions = (CARD_DECLINED * 10)[:signal_count]
    return {
        "report_id": "1-card",
        "title": "Card payment declined at checkout",
        "summary": " ".join(CARD_DECLINED[:2]),
        "signals": [
            {"signal_id": f"s{i}", "description": text, "source_product": "zendesk", "source_type": "ticket"}
            for i, text in enumerate(descriptions)
        ],
    }


def repo(name: str, path: Path) -> dict:
    return {"name": name, "path": str(path)}


# ---------------------------------------------------------------------------------------------
# Pure ranking


def test_tokenize_splits_identifiers_drops_stop_words_and_stems():
    assert agent.tokenize("The CardPaymentDeclined error in card_payments.py") == [
        "card",
        "payment",
        "declin",
        "error",
        "card",
        "payment",
        "py",
    ]
    assert agent.tokenize("getHTTPResponse") == ["http", "respons"]  # "get" is a stop word
    assert agent.stem("declines") == agent.stem("declined") == agent.stem("decline")


def test_index_skips_vendored_hidden_binary_oversized_empty_and_linked_files(shop):
    index = agent.index_repository("shop", shop)
    assert sorted(d.path for d in index.documents) == [
        "README.md",
        "auth/password_reset.py",
        "billing/card_payments.py",
        "search/query.py",
    ]


def test_the_matching_file_and_its_declined_lines_come_first(shop):
    result = agent.research(card_report(), [repo("shop", shop)])

    assert result["status"] == "ready" and result["repository"] == "shop"
    top = result["findings"][0]
    assert top["file"] == "billing/card_payments.py"
    # the window starts where the report's words first meet and is cut at the end of the file
    assert (top["start_line"], top["end_line"]) == (AUTHORISE_LINE, min(AUTHORISE_LINE + 9, LAST_LINE))
    assert top["start_line"] <= DECLINED_LINE <= top["end_line"]
    assert "declined" in top["reason"] and "card" in top["reason"] and "file name" in top["reason"]
    assert all(f["file"] != "search/query.py" for f in result["findings"])
    assert result["confidence"] == agent.HIGH_CONFIDENCE  # the report's words meet in the best lines


def test_findings_are_capped_and_only_matching_files_count(shop):
    report = {
        "report_id": "1-reset",
        "title": "Password reset email",
        "summary": "",
        "signals": [{"signal_id": "s1", "description": PASSWORD_RESET[0]}],
    }
    result = agent.research(report, [repo("shop", shop)], max_files=1)
    assert [f["file"] for f in result["findings"]] == ["auth/password_reset.py"]


def test_several_repositories_are_ranked_by_their_best_file(shop, docs_site):
    result = agent.research(card_report(), [repo("docs_site", docs_site), repo("shop", shop)])

    assert result["repository"] == "shop"
    ranking = result["repository_ranking"]
    assert [r["name"] for r in ranking] == ["shop", "docs_site"]
    assert ranking[0]["score"] > ranking[1]["score"] > 0
    assert "billing/card_payments.py" in ranking[0]["reason"]
    assert "guides/integrations.md" in ranking[1]["reason"]
    assert result["reason"].startswith("shop ranked first of 2 repositories")


def test_repositories_whose_folders_share_a_name_get_names_no_other_folder_has(tmp_path, shop, docs_site):
    """Before, a second folder `app` was named `app-2` beside a folder really called `app-2`, and the agent
    refused the repeated name: every report of a team so configured failed its research."""
    paths = []
    for parent, folder, source in (("a", "app", shop), ("b", "app", docs_site), ("c", "app-2", docs_site)):
        shutil.copytree(source, tmp_path / parent / folder)
        paths.append(str(tmp_path / parent / folder))

    candidates = repository_candidates(paths)

    assert [c["name"] for c in candidates] == ["app", "app-3", "app-2"]
    assert [c["path"] for c in candidates] == paths
    assert agent.research(card_report(), candidates)["repository"] == "app"


def test_no_matching_repository_and_missing_folders_need_human_input(tmp_path, docs_site):
    report = {"report_id": "1-x", "title": "Widget spline reticulation", "summary": "", "signals": []}
    missing = tmp_path / "gone"

    several = agent.research(report, [repo("docs_site", docs_site), repo("gone", missing)])
    assert several["status"] == "pending_input" and several["repository"] is None
    assert "none of the 2 candidate repositories" in several["reason"]
    assert {r["name"]: r["reason"] for r in several["repository_ranking"]}["gone"].endswith("not found or not readable")

    only_missing = agent.research(card_report(), [repo("gone", missing)])
    assert only_missing["status"] == "pending_input" and "not found" in only_missing["reason"]

    no_match = agent.research(report, [repo("docs_site", docs_site)])
    assert no_match["status"] == "ready" and no_match["findings"] == []
    assert no_match["confidence"] == agent.LOW_CONFIDENCE


def test_the_agent_reports_what_it_found_and_leaves_priority_to_the_report_judgement(shop):
    result = agent.research(card_report(), [repo("shop", shop)])

    assert set(result) == {"status", "repository", "repository_ranking", "findings", "confidence", "reason"}


def test_the_agent_ends_itself_at_the_wall_clock_limit_even_inside_c_code():
    """The alarm's default action stops the process wherever it is: here inside one C call that
    never returns to Python (a catastrophically backtracking regular expression), with no
    supervising process."""
    started = time.monotonic()
    hang = "import re, agent; agent.limit_wall_clock(0.5); re.match(r'(a+)+$', 'a' * 64 + 'b')"
    code = subprocess.run([sys.executable, "-c", hang], cwd=AGENT_SCRIPT.parent).returncode
    assert code == -signal.SIGALRM and time.monotonic() - started < 15


def test_the_agent_takes_its_wall_clock_limit_from_its_environment(tmp_path):
    """A container runs the image's command: its runner passes the limit in the environment, so the agent
    ends at it also when the runner (whose watchdog would stop the container) was killed."""
    hang = "import agent, sys, time; sys.argv = ['agent']; agent.run_agent = lambda *_: time.sleep(60); agent.main()"
    started = time.monotonic()
    environment = {**os.environ, "SIGNALS_AGENT_TIMEOUT_SECONDS": "0.5"}
    code = subprocess.run([sys.executable, "-c", hang], cwd=AGENT_SCRIPT.parent, env=environment).returncode
    assert code == -signal.SIGALRM and time.monotonic() - started < 15


def test_no_repository_in_a_system_tree_reaches_the_agent_nor_one_a_container_cannot_mount(tmp_path, shop):
    """`signals teams set` refuses /etc, but a repository replaced by a symlink to it since reaches
    research; and the Docker engine mounts a path that is not UTF-8 as another folder (U+FFFD in its name),
    which may be another team's."""
    to_etc = tmp_path / "was-a-repo"
    to_etc.symlink_to("/etc", target_is_directory=True)
    not_utf8 = tmp_path / os.fsdecode(b"app\xff")
    shutil.copytree(shop, not_utf8)
    repositories = [repo("etc", to_etc), repo("bytes", not_utf8), repo("shop", shop)]
    warnings: list[str] = []
    readable = SandboxResource(mode="docker").readable_repositories(repositories, warnings.append)
    assert [r["name"] for r in readable] == ["shop"]
    assert "is inside the system tree /etc" in warnings[0] and "is not valid UTF-8" in warnings[1]
    subprocess_readable = SandboxResource().readable_repositories(repositories, warnings.append)
    assert [r["name"] for r in subprocess_readable] == ["bytes", "shop"]  # a local process reads any name


def test_the_agent_reads_no_folder_but_the_one_its_runner_checked(tmp_path, shop, docs_site):
    """The runner records the checked folder's device and inode: a folder swapped since (a container's
    mount resolves its source only when the container starts) is refused before anything is read."""
    [checked] = SandboxResource().readable_repositories([repo("shop", shop)], print)
    assert (checked["device"], checked["inode"]) == (os.stat(shop).st_dev, os.stat(shop).st_ino)
    assert agent.research(card_report(), [checked])["repository"] == "shop"

    swapped = {**checked, "path": str(docs_site)}
    with pytest.raises(ValueError, match=f"repository shop: folder {docs_site} is not the folder checked"):
        agent.research(card_report(), [repo("docs_site", docs_site), swapped])


def test_long_indexing_writes_a_progress_line_at_the_agents_interval(tmp_path, monkeypatch):
    """A runner stops an agent that writes nothing for its inactivity limit: indexing a large repository
    says it is still going, at most once per interval, from the indexing loop itself (an agent stuck on
    one file goes silent)."""
    large = tmp_path / "large"
    large.mkdir()
    for number in range(10):
        (large / f"module_{number}.py").write_text("def charge_card(): pass\n")
    read_text = agent.read_text
    monkeypatch.setattr(agent, "read_text", lambda path: time.sleep(0.1) or read_text(path))
    log = agent.AgentLog(tmp_path / "log.jsonl", progress_seconds=0.25)

    agent.index_repository("large", large, log)
    lines = read_json_lines((tmp_path / "log.jsonl").read_bytes())
    assert len(lines) >= 2 and {line["message"] for line in lines} == {"indexing repository large"}
    times = [datetime.fromisoformat(line["ts"]).timestamp() for line in lines]
    assert all(later - earlier >= 0.249 for earlier, later in zip(times, times[1:]))  # ms timestamps
    assert [line["data"]["files"] for line in lines] == sorted(line["data"]["files"] for line in lines)


def test_a_long_walk_past_files_not_worth_reading_writes_progress_lines(tmp_path, monkeypatch):
    """A repository of many files the agent skips unread (images, say) is walked without indexing
    anything: the walk itself says it is still going, or a runner's inactivity limit would stop it."""
    images = tmp_path / "images"
    images.mkdir()
    for number in range(10):
        (images / f"photo_{number}.png").write_bytes(b"\x89PNG")
    candidate = agent.is_candidate_file
    monkeypatch.setattr(agent, "is_candidate_file", lambda path: time.sleep(0.1) or candidate(path))
    log = agent.AgentLog(tmp_path / "log.jsonl", progress_seconds=0.25)

    index = agent.index_repository("images", images, log)
    lines = read_json_lines((tmp_path / "log.jsonl").read_bytes())
    assert index.documents == [] and len(lines) >= 2
    assert {line["message"] for line in lines} == {"indexing repository images"}
    walked = [line["data"]["entries"] for line in lines]
    assert walked == sorted(walked) and walked[-1] <= 10 and all(line["data"]["files"] == 0 for line in lines)


def test_ranking_many_files_writes_progress_lines_and_a_long_report_is_scored_by_the_shared_words(
    tmp_path, monkeypatch
):
    """Ranking follows indexing in silence unless it says it is still going: a report of thousands of
    distinct words against thousands of files once ran for seconds without a line and was stopped by a
    container's inactivity limit. Its score only walks the words a file and the report share."""
    files = tmp_path / "files"
    files.mkdir()
    for number in range(10):
        (files / f"module_{number}.py").write_text(f"def charge_card_{number}(): pass\n")
    vocabulary = [f"word{number}" for number in range(3000)]
    report = {**card_report(), "signals": [{"signal_id": "s1", "description": " ".join(["card", *vocabulary])}]}
    query = agent.build_query(report)
    index = agent.index_repository("files", files, agent.AgentLog())
    bm25 = agent.Bm25(index.documents)
    weights = bm25.term_weights(query)
    for document in index.documents:
        by_query = {t: w for t, w in weights.items() if document.term_counts.get(t)}
        assert bm25.score(document, weights).contributions.keys() == by_query.keys()
    score = bm25.score
    monkeypatch.setattr(bm25, "score", lambda document, weights: time.sleep(0.1) or score(document, weights))
    log = agent.AgentLog(tmp_path / "log.jsonl", progress_seconds=0.25)

    ranked = bm25.rank(query, lambda scored: log.still_working("ranking files", files=scored))
    lines = read_json_lines((tmp_path / "log.jsonl").read_bytes())
    assert len(ranked) == 10 and len(lines) >= 2 and {line["message"] for line in lines} == {"ranking files"}
    assert [line["data"]["files"] for line in lines] == sorted(line["data"]["files"] for line in lines)


def test_a_wall_clock_limit_as_long_as_the_settings_allow_still_starts_the_agent():
    """SIGNALS_SANDBOX_TIMEOUT_SECONDS may be set just below 10^18, past the longest alarm (a C int of
    seconds): the agent sets the longest alarm instead of failing every research at its start."""
    probe = "import agent, signal; agent.limit_wall_clock(10**17); print(signal.alarm(0))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=AGENT_SCRIPT.parent, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 60 * 365 * 86400


# ---------------------------------------------------------------------------------------------
# Through Dagster Pipes, inside a real materialisation


def materialize_research(report: dict, repositories: list[dict], sandbox: SandboxResource):
    outcomes = []

    @dg.asset
    def research_probe(context: dg.AssetExecutionContext, sandbox: SandboxResource) -> dg.MaterializeResult:
        outcome = sandbox.run_research(context, report, repositories)
        outcomes.append(outcome)
        return dg.MaterializeResult(metadata={"status": outcome.status, "findings": len(outcome.findings)})

    result = dg.materialize([research_probe], resources={"sandbox": sandbox})
    return result, outcomes[0]


@pytest.mark.parametrize("repository_count", [0, 1, 2])
def test_research_runs_through_pipes(shop, docs_site, repository_count):
    repositories = [repo("shop", shop), repo("docs_site", docs_site)][:repository_count]

    result, outcome = materialize_research(card_report(), repositories, SandboxResource())

    assert result.success
    # Only the asset's own materialisation: the agent reports its result as a custom message.
    [materialization] = result.asset_materializations_for_node("research_probe")
    assert materialization.metadata["status"].value == outcome.status
    assert outcome.sandbox == "subprocess"
    if repository_count == 0:
        assert outcome.status == "pending_input" and outcome.repository is None
        assert outcome.reason == "no candidate repositories configured for this team"
        assert outcome.findings == [] and outcome.confidence == "low"
    else:
        assert outcome.status == "ready" and outcome.repository == "shop"
        assert outcome.findings[0]["file"] == "billing/card_payments.py"
        assert [r["name"] for r in outcome.repository_ranking] == ["shop", "docs_site"][:repository_count]
        assert outcome.confidence == "high"


def test_no_repository_in_the_platforms_data_folder_reaches_the_agent(shop, tmp_path):
    """`signals teams set` refuses such a folder, but a team config written straight to the store, or a
    repository replaced by a symlink since, reaches research: the agent would read every team's data."""
    home = tmp_path / "signals_home"
    shutil.copytree(shop, home / "objects" / "shop")
    link = tmp_path / "innocent"
    link.symlink_to(home / "objects", target_is_directory=True)
    repositories = [
        repo("home", home),
        repo("inside", home / "objects" / "shop"),
        repo("link", link),
        repo("shop", shop),
    ]

    _, outcome = materialize_research(card_report(), repositories, SandboxResource(data_folder=str(home)))
    assert outcome.status == "ready" and outcome.repository == "shop"
    assert [r["name"] for r in outcome.repository_ranking] == ["shop"]

    _, unguarded = materialize_research(card_report(), repositories, SandboxResource())
    assert {r["name"] for r in unguarded.repository_ranking} == {"home", "inside", "link", "shop"}


def test_a_repository_swapped_after_its_check_is_refused_by_the_subprocess_agent(tmp_path, monkeypatch, shop):
    home = tmp_path / "signals_home"
    shutil.copytree(shop, home / "objects" / "shop")
    team_folder = tmp_path / "team"
    team_folder.mkdir()
    open_pipes_session = dg.open_pipes_session

    def swap_then_open(*args, **kwargs):  # after the check, before the agent starts
        team_folder.rename(tmp_path / "team.real")
        team_folder.symlink_to(home, target_is_directory=True)
        return open_pipes_session(*args, **kwargs)

    monkeypatch.setattr(dg, "open_pipes_session", swap_then_open)
    with pytest.raises(SandboxResearchError, match="repository team: folder .* is not the folder checked"):
        materialize_research(card_report(), [repo("team", team_folder)], SandboxResource(data_folder=str(home)))


def test_the_jsonl_log_has_timestamped_progress_and_a_final_result(shop):
    _, outcome = materialize_research(card_report(), [repo("shop", shop)], SandboxResource())

    lines = outcome.log_lines
    assert {line["type"] for line in lines} <= {"progress", "console", "result"}
    assert all(datetime.fromisoformat(line["ts"]).utcoffset().total_seconds() == 0 for line in lines)
    progress = [line["message"] for line in lines if line["type"] == "progress"]
    assert progress[0] == "research started" and "selected repository shop" in progress
    assert lines[-1]["type"] == "result"
    assert lines[-1]["data"]["findings"] == outcome.findings and lines[-1]["data"]["status"] == "ready"


def fake_interpreter(tmp_path: Path, script: str) -> str:
    path = tmp_path / "fake_python"
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("exit 0", "exited without reporting a result"),
        ("exit 3", "research agent failed (subprocess)"),
    ],
)
def test_an_agent_without_a_result_fails_the_asset_clearly(tmp_path, shop, script, message):
    sandbox = SandboxResource(python_executable=fake_interpreter(tmp_path, script))
    with pytest.raises(SandboxResearchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        materialize_research(card_report(), [repo("shop", shop)], sandbox)


def stubborn_agent(tmp_path: Path) -> tuple[str, Path]:
    """An agent that ignores SIGINT and SIGTERM, as does the child it starts, and never ends by itself
    (no alarm); the file where it writes its own and its child's process ids."""
    pids = tmp_path / "pids"
    script = f"trap '' INT TERM\nsleep 600 &\necho $! $$ > {pids}\nwait"
    return fake_interpreter(tmp_path, script), pids


def still_running(pids: Path) -> list[int]:
    """Those of the process ids in `pids` that still run (a zombie waiting for its reaper does not)."""
    running = []
    for pid in map(int, pids.read_text().split()):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except FileNotFoundError:
            continue
        if state != "Z":
            running.append(pid)
    return running


@pytest.mark.timeout(120)
def test_an_agent_that_ignores_its_signals_still_ends_at_the_time_limit_with_all_it_started(tmp_path, shop):
    from signals_assets.resources.sandbox import DEADLINE_SLACK_SECONDS, TERMINATION_GRACE_SECONDS

    interpreter, pids = stubborn_agent(tmp_path)
    started = time.monotonic()
    with pytest.raises(SandboxResearchError, match=r"research agent exceeded its 2s limit and was stopped"):
        materialize_research(
            card_report(), [repo("shop", shop)], SandboxResource(python_executable=interpreter, timeout_seconds=2)
        )
    elapsed = time.monotonic() - started
    assert 2 + DEADLINE_SLACK_SECONDS + TERMINATION_GRACE_SECONDS <= elapsed < 60, elapsed  # SIGKILL ended it
    assert still_running(pids) == []


@pytest.mark.timeout(120)
def test_a_stopped_report_run_ends_an_agent_that_ignores_its_signals(tmp_path, shop):
    """What a terminated report run does (research/pool.py sets `cancelled`), long before the time limit."""
    import threading

    interpreter, pids = stubborn_agent(tmp_path)
    cancelled = threading.Event()

    @dg.asset
    def research_probe(context: dg.AssetExecutionContext, sandbox: SandboxResource) -> None:
        threading.Timer(1.0, cancelled.set).start()
        sandbox.run_research(context, card_report(), [repo("shop", shop)], cancelled=cancelled)

    started = time.monotonic()
    with pytest.raises(SandboxResearchError, match="the report run was stopped"):
        dg.materialize([research_probe], resources={"sandbox": SandboxResource(python_executable=interpreter)})
    assert time.monotonic() - started < 60
    assert still_running(pids) == []


def test_an_unknown_mode_is_rejected(shop):
    with pytest.raises(ValueError, match="sandbox mode 'vm' is not supported"):
        materialize_research(card_report(), [repo("shop", shop)], SandboxResource(mode="vm"))


# A run worker: starts the agent as the sandbox does (its own session, its work dir as cwd, `--runner-pid`),
# with a Pipes context file that is a FIFO, so the agent waits there as if researching; prints its pid.
RUNNER = """
import os, subprocess, sys, time
from dagster_pipes import encode_env_var
agent_script, work = sys.argv[1:3]
env = {**os.environ, "DAGSTER_PIPES_CONTEXT": encode_env_var({"path": os.path.join(work, "context")}),
       "DAGSTER_PIPES_MESSAGES": encode_env_var({"path": os.path.join(work, "messages")})}
command = [sys.executable, agent_script, "--timeout-seconds", "600", "--runner-pid", str(os.getpid())]
agent = subprocess.Popen(command, cwd=work, env=env, start_new_session=True)
print(agent.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.timeout(120)
def test_an_agent_whose_run_worker_is_killed_ends_and_removes_its_work_dir(tmp_path):
    """A run worker killed with SIGKILL can neither stop its agent (its own session) nor remove the agent's
    work dir, which holds the report. Before, the orphan ran on to its time limit and the folder stayed."""
    work = tmp_path / "signals-research-killed"
    work.mkdir()
    os.mkfifo(work / "context")
    (work / "report.json").write_text(json.dumps(card_report()))
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(AGENT_SCRIPT), str(work)], stdout=subprocess.PIPE)
    assert runner.stdout is not None
    agent_pid = int(runner.stdout.readline())
    pids = tmp_path / "pids"
    pids.write_text(str(agent_pid))
    time.sleep(1)
    assert still_running(pids) == [agent_pid] and work.exists()  # waiting for its context, as if researching

    runner.kill()
    runner.wait()
    deadline = time.monotonic() + 30
    while (still_running(pids) or work.exists()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert still_running(pids) == [] and not work.exists()


# A run worker researching one report through the subprocess sandbox; the interpreter waits before it
# starts the real agent, so the test can kill the worker while its research is open.
SANDBOX_WORKER = """
import json, sys
import dagster as dg
from signals_assets.resources.sandbox import SandboxResource
report, repositories, interpreter = json.loads(sys.argv[1])

@dg.asset
def research_probe(context: dg.AssetExecutionContext, sandbox: SandboxResource) -> None:
    sandbox.run_research(context, report, repositories)

dg.materialize([research_probe], resources={"sandbox": SandboxResource(python_executable=interpreter)})
"""


@pytest.mark.timeout(120)
def test_a_killed_run_worker_leaves_no_research_files_in_the_temporary_folder(tmp_path, shop):
    """The agent removes its work dir when its run worker dies, and prune_containers the work dirs of ended
    runs; the Pipes message file (the agent's result: findings, reasons with the report's words) used to
    lie in a `signals-pipes-*` folder of its own that a killed worker left behind for good."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    started = tmp_path / "started"
    interpreter = fake_interpreter(tmp_path, f'touch {started}\nsleep 2\nexec {sys.executable} "$@"')
    arguments = json.dumps([card_report(), [repo("shop", shop)], interpreter])
    worker = subprocess.Popen(
        [sys.executable, "-c", SANDBOX_WORKER, arguments],
        env={**os.environ, "TMPDIR": str(temporary)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists(), "the research never started"

    worker.kill()  # before the agent runs: it finds its runner gone and cleans up
    worker.wait()
    deadline = time.monotonic() + 30
    while list(temporary.glob("signals-*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(temporary.glob("signals-*")) == []  # (dg.materialize's own instance folder aside)


def test_the_subprocess_sandbox_names_its_run_worker_to_the_agent(tmp_path, shop):
    """The agent can only watch the process that started it if told which one it is."""
    argv = tmp_path / "argv"
    interpreter = fake_interpreter(tmp_path, f'echo "$@" > {argv}')
    with pytest.raises(SandboxResearchError):
        materialize_research(card_report(), [repo("shop", shop)], SandboxResource(python_executable=interpreter))
    assert f"--runner-pid {os.getpid()}" in argv.read_text()


def test_the_agent_module_imports_only_the_standard_library():
    code = (
        "import sys, runpy; before = set(sys.modules); "
        f"runpy.run_path({str(AGENT_SCRIPT)!r}, run_name='agent_probe'); "
        "print(sorted({m.split('.')[0] for m in set(sys.modules) - before} - set(sys.stdlib_module_names)))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_the_subprocess_agent_gets_an_allow_listed_environment_without_secrets(tmp_path, shop, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-the-agent")
    monkeypatch.setenv("SIGNALS_CLICKHOUSE_PASSWORD", "not-for-the-agent-either")
    # Stands in for the interpreter: reports the environment and the Pipes context parameters.
    probe = tmp_path / "environment_probe"
    probe.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent("""
        import json, os
        from dagster_pipes import decode_env_var, open_dagster_pipes

        with open_dagster_pipes() as pipes:
            context = decode_env_var(os.environ["DAGSTER_PIPES_CONTEXT"])
            pipes.report_custom_message({"status": "ready", "confidence": "low", "reason": json.dumps(
                {"environment": dict(os.environ), "context": context, "report": pipes.get_extra("report")["report_id"]})})
        """)
    )
    probe.chmod(0o755)

    _, outcome = materialize_research(
        card_report(), [repo("shop", shop)], SandboxResource(python_executable=str(probe))
    )
    seen = json.loads(outcome.reason)
    assert "sk-not-for-the-agent" not in json.dumps(seen["environment"])
    assert set(seen["environment"]) <= {
        "PATH",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "TZ",
        "PYTHONPATH",
        "HOME",
        "TMPDIR",
        "DAGSTER_PIPES_CONTEXT",
        "DAGSTER_PIPES_MESSAGES",
    }
    assert seen["environment"]["PATH"] == os.environ["PATH"]
    assert seen["environment"]["HOME"] == seen["environment"]["TMPDIR"]  # the run's work dir, removed after it
    assert not Path(seen["environment"]["HOME"]).exists()
    # The report reaches the agent as a file, not in the environment.
    assert set(seen["context"]) == {"path"} and seen["report"] == "1-card"


@pytest.fixture
def hostile_shop(shop, tmp_path) -> Path:
    """The shop repository plus what must not be read: a fifo, device files, /proc, links out of it."""
    os.mkfifo(shop / "billing" / "card_declines.py")  # opening it would wait for a writer
    (shop / "billing" / "zero_card_payments.py").symlink_to("/dev/zero")
    (shop / "billing" / "kernel_card_log.txt").symlink_to("/proc/kmsg")
    (shop / "proc").symlink_to("/proc")
    (shop / "dev").symlink_to("/dev")
    return shop


@pytest.mark.timeout(120)
def test_the_agent_reads_only_regular_files_inside_the_repository(hostile_shop):
    files = {path.relative_to(hostile_shop).as_posix() for path in agent.iter_source_files(hostile_shop)}
    assert "billing/card_payments.py" in files
    assert not files & {"billing/card_declines.py", "billing/zero_card_payments.py", "billing/kernel_card_log.txt"}
    assert not any(name.startswith(("proc/", "dev/")) for name in files)

    # Even when asked directly (a file swapped after the walk): nothing blocks or streams forever.
    for path in [
        hostile_shop / "billing" / "card_declines.py",
        hostile_shop / "billing" / "zero_card_payments.py",
        Path("/dev/zero"),
        Path("/proc/self/status"),
        Path("/proc/kmsg"),
    ]:
        assert agent.read_text(path) is None, path
    assert "authorise_card_payment" in agent.read_text(hostile_shop / "billing" / "card_payments.py")


def test_a_folder_chain_past_the_recursion_limit_is_read_down_to_the_depth_limit(shop):
    """os.walk recursed once per level: 1,100 nested folders ended the agent with a RecursionError."""
    folder = os.open(shop, os.O_RDONLY)
    for depth in range(1, 1101):  # one level at a time (Path.mkdir(parents=True) recurses too)
        os.mkdir("d", dir_fd=folder)
        inner = os.open("d", os.O_RDONLY, dir_fd=folder)
        os.close(folder)
        folder = inner
        if depth in (50, agent.MAX_FOLDER_DEPTH, agent.MAX_FOLDER_DEPTH + 1, 1100):
            with os.fdopen(os.open("card_checkout.py", os.O_WRONLY | os.O_CREAT, dir_fd=folder), "w") as file:
                file.write("card declined at checkout\n")
    os.close(folder)
    try:
        files = {path.relative_to(shop).as_posix() for path in agent.iter_source_files(shop)}
    finally:
        remove_folder_chain(shop / "d")
    assert "billing/card_payments.py" in files
    assert {name.count("/") for name in files if name.startswith("d/")} == {50, agent.MAX_FOLDER_DEPTH}


def remove_folder_chain(top: Path) -> None:
    """Removes nested folders `top/d/d/…` a level at a time. Python 3.11's shutil.rmtree recurses once per
    level, so pytest's cleanup of old temporary folders ended the next test session with a RecursionError."""
    parked = top.with_name(top.name + "-inner")
    while (top / "d").is_dir():
        (top / "d").rename(parked)
        shutil.rmtree(top)
        parked.rename(top)
    shutil.rmtree(top)


@pytest.mark.timeout(300)
def test_research_over_proc_like_trees_ends(hostile_shop):
    # Upstream validation refuses such repositories; the agent must not hang if it were bypassed.
    repositories = [repo("shop", hostile_shop), repo("proc", Path("/proc")), repo("dev", Path("/dev"))]
    _, outcome = materialize_research(card_report(), repositories, SandboxResource(timeout_seconds=240))
    assert outcome.status == "ready" and outcome.repository == "shop"
    assert outcome.findings[0]["file"] == "billing/card_payments.py"
    assert [finding["file"] for finding in outcome.findings if "card_declines" in finding["file"]] == []


def test_the_memory_cap_stays_within_a_lower_hard_limit_the_agent_inherits():
    """A run worker started under `ulimit -v` (here 2 GB) must not fail every research at the agent's start."""
    cap = "import agent, resource; agent.limit_memory(4096); print(resource.getrlimit(resource.RLIMIT_AS)[0] >> 20)"
    with_hard_limit = f"import resource; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); {cap}"
    run = subprocess.run(
        [sys.executable, "-c", with_hard_limit], cwd=AGENT_SCRIPT.parent, capture_output=True, text=True
    )
    assert (run.returncode, run.stdout) == (0, "2048\n"), run.stderr


def test_a_repository_made_to_bloat_the_index_ends_the_subprocess_agent_at_its_memory_limit(shop):
    """About 16 MB of index per MB of distinct words: 12 such files take the agent past 128 MB, where it
    stops with a MemoryError (its report fails with the reason) instead of taking the host's memory."""
    letters = random.Random(1)
    for number in range(12):
        text = " ".join("".join(letters.choices(string.ascii_lowercase, k=8)) for _ in range(110_000))
        (shop / f"card_words_{number}.txt").write_text(text)
    with pytest.raises(SandboxResearchError, match="research failed: MemoryError"):
        materialize_research(card_report(), [repo("shop", shop)], SandboxResource(memory_mb=128))
