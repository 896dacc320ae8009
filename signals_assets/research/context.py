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
    """Name each repository by its folder; a later folder of a name already taken is `<name>-2`, `-3`…,
    the first such name no folder has (a folder may itself be called `app-2`)."""
    folders = [os.path.basename(path.rstrip("/")) or path for path in paths]
    taken: set[str] = set()
    candidates = []
    for path, folder in zip(paths, folders):
        name, number = folder, 1
        while name in taken or (number > 1 and name in folders):
            number += 1
            name = f"{folder}-{number}"
        taken.add(name)
        candidates.append({"name": name, "path": path})
    return candidates
