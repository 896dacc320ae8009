"""What the research agent is given: the report as a task and the team's candidate repositories."""

import os

TASK_SIGNAL_FIELDS = ("signal_id", "description", "source_product", "source_type")


def research_task(report: str, summary: dict, signals: list[dict]) -> dict:
    """{report_id, title, summary, signals}: the report's judgement and its live signals."""
    return {
        "report_id": report,
        "title": summary["title"],
        "summary": summary["summary"],
        "signals": [{k: s[k] for k in TASK_SIGNAL_FIELDS} for s in signals],
    }


def repository_candidates(paths: list[str]) -> list[dict]:
    """Name each repository by its folder, made unique when two folders share a name."""
    names: dict[str, int] = {}
    candidates = []
    for path in paths:
        name = os.path.basename(path.rstrip("/")) or path
        names[name] = names.get(name, 0) + 1
        candidates.append({"name": name if names[name] == 1 else f"{name}-{names[name]}", "path": path})
    return candidates
