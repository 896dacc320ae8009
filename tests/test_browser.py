"""The Dagster UI as a user sees it, in headless Chromium (Debian's chromium driven by Playwright):
`dagster dev` serves the 28 demo signals, settled by `signals process` before it starts. The lineage
page shows every asset of the definitions, a report's partition pages show the report as the store
has it, and each asset's Checks tab lists exactly the checks the definitions declare, with their
results. Screenshots go to each test's temporary folder."""

import json
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from dagster_dev import BIN, REPO_ROOT, running_dagster_dev

from conftest import SETTINGS_VARIABLES

CHROMIUM = Path("/usr/bin/chromium")
DEMO_SIGNALS = REPO_ROOT / "scripts" / "demo" / "signals.jsonl"
DEMO_REPOSITORY = REPO_ROOT / "scripts" / "demo" / "shop_app"
TEAM_ID = "1"
# Generous: two shared cores and a UI that renders after several GraphQL round trips.
UI_TIMEOUT_MS = 180_000
# Dagster's first-visit "Join the community" dialog would cover the pages; a returning user has dismissed it.
DISMISS_COMMUNITY_DIALOG = "window.localStorage.setItem('communityNux', '1')"
# Long Markdown metadata sits behind this link; its dialog holds the text.
MARKDOWN_DIALOG_LINK = "[Show Markdown]"
MATERIALIZED_PARTITION = re.compile(r"^View all historical events \([1-9]")


def signals_cli(env: dict, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "signals"), *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-3000:])
    return done.stdout


@pytest.fixture(scope="module")
def demo_ui(tmp_path_factory):
    """`dagster dev` on the demo data, processed to the end first (no run is left for the daemon);
    yields the base URL and the team's reports as `signals list-reports --signals --json` gives them."""
    home = tmp_path_factory.mktemp("browser") / "signals_home"
    env = {name: value for name, value in os.environ.items() if name not in SETTINGS_VARIABLES}
    env |= {"SIGNALS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"), "PYTHONUNBUFFERED": "1"}
    (home / "dagster_home").mkdir(parents=True)
    (home / "dagster_home" / "dagster.yaml").write_text((REPO_ROOT / "deploy" / "dagster.local.yaml").read_text())
    signals_cli(env, "teams", "set", TEAM_ID, "--consent", "--repo", str(DEMO_REPOSITORY))
    signals_cli(env, "emit-file", str(DEMO_SIGNALS), "--team-id", TEAM_ID)
    signals_cli(env, "process")
    listing = json.loads(signals_cli(env, "list-reports", "--team-id", TEAM_ID, "--signals", "--json"))
    with running_dagster_dev(env, home.parent / "dagster-dev.log") as base_url:
        yield base_url, listing["reports"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-chromium (Debian's chromium package)")
    with sync_playwright() as playwright:
        # Debian's build, never a downloaded one; --no-sandbox because the tests run as root.
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.add_init_script(DISMISS_COMMUNITY_DIALOG)
    context.set_default_timeout(UI_TIMEOUT_MS)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def asset_graph():
    from signals_assets.definitions import defs

    return defs().resolve_asset_graph()


def flat(text: str) -> str:
    return " ".join(text.split())


def page_text(page, screenshot: Path) -> str:
    """The page's visible text, with the text of every Markdown metadata dialog it links to; a
    screenshot of the page, and of each dialog beside it."""
    page.screenshot(path=screenshot, full_page=True)
    texts = [page.locator("body").inner_text()]
    for number, link in enumerate(page.get_by_text(MARKDOWN_DIALOG_LINK, exact=True).all(), start=1):
        link.click()
        dialog = page.get_by_role("dialog")
        dialog.locator(".dagster-markdown").wait_for()  # the UI loads its Markdown renderer on first use
        dialog.screenshot(path=screenshot.with_name(f"{screenshot.stem}-markdown-{number}.png"))
        texts.append(dialog.inner_text())
        page.keyboard.press("Escape")
        dialog.wait_for(state="detached")
    return flat("\n".join(texts))


def researched_report(reports: list[dict]) -> dict:
    """The first report that was summarised and researched with findings."""
    ready = [r for r in reports if r["status"] == "ready" and r["research"]["findings"]]
    assert ready, f"the demo data left no researched report: {[(r['id'], r['status']) for r in reports]}"
    return ready[0]


def summary_page_texts(report: dict) -> list[str]:
    """What the report's report_summaries materialisation shows, as the store has it."""
    return [
        report["title"],
        report["summary"],
        report["priority"],
        report["actionability"],
        report["actionability_reason"],
    ]


def research_page_texts(report: dict) -> list[str]:
    """What the report's report_research materialisation shows, as the store has it."""
    research = report["research"]
    return [
        research["status"],
        research["repository"],
        research["log_key"],
        *(finding["file"] for finding in research["findings"]),
    ]


def shown_name(label: str, names: list[str]) -> str:
    """The one asset name a graph node's label stands for: the UI shortens long names in the middle."""
    head, ellipsis, tail = label.partition("…")
    matches = [
        name
        for name in names
        if name == label
        or (ellipsis and len(name) > len(head + tail) and name.startswith(head) and name.endswith(tail))
    ]
    assert len(matches) == 1, (label, matches)
    return matches[0]


def test_lineage_page_draws_every_asset_of_the_definitions(demo_ui, page, asset_graph, tmp_path):
    from playwright.sync_api import expect

    base_url, _ = demo_ui
    page.goto(f"{base_url}/asset-groups")
    graph = page.locator("svg foreignObject")
    graph.first.wait_for()
    # Groups start collapsed; the graph's settings menu expands them, as a user would.
    settings = (
        page.get_by_role("button").filter(has=page.locator("[aria-label=settings]")).filter(has_not_text="Settings")
    )
    settings.click()
    page.get_by_role("menuitem", name="Expand all groups").click()
    names = sorted(key.to_user_string() for key in asset_graph.get_all_asset_keys())
    labels = graph.locator("[class*=assetName]")
    expect(labels).to_have_count(len(names), timeout=UI_TIMEOUT_MS)
    settings.click()  # closes the menu before the screenshot
    expect(page.get_by_role("menuitem")).to_have_count(0, timeout=UI_TIMEOUT_MS)
    page.screenshot(path=tmp_path / "lineage.png")
    assert sorted(shown_name(label.strip(), names) for label in labels.all_inner_texts()) == names


@pytest.mark.parametrize(
    "asset, expected_texts", [("report_summaries", summary_page_texts), ("report_research", research_page_texts)]
)
def test_report_partition_page_shows_the_report_from_the_store(demo_ui, page, asset, expected_texts, tmp_path):
    base_url, reports = demo_ui
    report = researched_report(reports)
    page.goto(f"{base_url}/assets/{asset}?view=partitions&partition={quote(report['id'])}")
    # The partition's detail renders empty ("No metadata entries") until its materialisation has loaded.
    page.get_by_text(MATERIALIZED_PARTITION).wait_for()
    shown = page_text(page, tmp_path / f"{asset}-{report['id']}.png")
    assert report["id"] in shown
    missing = [text for text in expected_texts(report) if flat(str(text)) not in shown]
    assert not missing, (missing, shown)


def test_checks_tabs_list_exactly_the_declared_checks_and_their_results(demo_ui, page, asset_graph, tmp_path):
    from playwright.sync_api import expect

    base_url, _ = demo_ui
    for key in sorted(asset_graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        declared = sorted(check.name for check in asset_graph.asset_check_keys if check.asset_key == key)
        page.goto(f"{base_url}/assets/{'/'.join(quote(part) for part in key.path)}?view=checks")
        rows = page.locator("[class*=checkRow]")
        if declared:
            expect(rows).to_have_count(len(declared), timeout=UI_TIMEOUT_MS)
            listed = rows.locator("div[title]").evaluate_all("names => names.map(name => name.title)")
            assert sorted(listed) == declared, key
            for name in declared:  # the demo data keeps every guarantee
                expect(rows.filter(has=page.locator(f'div[title="{name}"]'))).to_contain_text(
                    "Succeeded", timeout=UI_TIMEOUT_MS
                )
        else:
            page.get_by_text("No checks defined for this asset").wait_for()
            assert rows.count() == 0, key
        page.screenshot(path=tmp_path / f"checks-{key.to_user_string()}.png")
