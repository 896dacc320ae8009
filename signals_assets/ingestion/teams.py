"""Team configuration in the object store (`teams/{team_id}.json`) and the gate it implies.

Pure standard library (it sits on the emit facade's import path). The same `gate_reason` is
applied at emit time and again when a batch is processed, so a team that withdraws consent or
disables a source in between still has its signals stopped.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import PurePosixPath

from signals_assets.ingestion.validation import SOURCE_PAIRS, check_team_id, shown
from signals_assets.storage.object_store import ObjectStore

# Never a repository: the research agent would read devices, kernel interfaces or the host's secrets.
SYSTEM_TREES = ("/proc", "/sys", "/dev", "/etc")


@dataclass
class TeamConfig:
    team_id: int
    ai_processing_consent: bool = False
    enabled_sources: list[str] | None = None  # None = every known "product/type" pair
    repositories: list[str] = field(default_factory=list)  # local folders the research agent may read
    # Overrides of the settings SIGNALS_MAX_SIGNALS_PER_TEAM_BATCH and SIGNALS_MAX_REPORTS_PER_TEAM_DAY.
    max_signals_per_batch: int | None = None
    max_reports_per_day: int | None = None


def team_key(team_id: int) -> str:
    return f"teams/{team_id}.json"


def check_team(config: TeamConfig) -> None:
    """Raise ValueError naming the first invalid field."""
    check_team_id(config.team_id)
    if not isinstance(config.ai_processing_consent, bool):
        raise ValueError(f"ai_processing_consent: must be a boolean, got {shown(config.ai_processing_consent)}")
    if config.enabled_sources is not None:
        if not isinstance(config.enabled_sources, list):
            raise ValueError("enabled_sources: must be a list of product/type strings or null (all sources)")
        unknown = [s for s in config.enabled_sources if s not in SOURCE_PAIRS]
        if unknown:
            raise ValueError(f"enabled_sources: unknown source {shown(unknown[0])} (known: {', '.join(SOURCE_PAIRS)})")
    if not isinstance(config.repositories, list) or not all(isinstance(r, str) for r in config.repositories):
        raise ValueError("repositories: must be a list of folder paths (strings)")
    for path in config.repositories:
        rule = system_tree_rule(path)
        if rule:
            raise ValueError(f"repositories: {path!r} {rule}")
    for name in ("max_signals_per_batch", "max_reports_per_day"):
        value = getattr(config, name)
        if value is not None and (type(value) is not int or value < 1):
            raise ValueError(f"{name}: must be a positive integer or null (the setting), got {shown(value)}")


def system_tree_rule(path: str) -> str | None:
    """Why `path` (absolute, resolved) may not be a repository, or None."""
    if not path.startswith("/"):
        return "must be an absolute path"
    resolved = PurePosixPath(os.path.normpath(path))
    if resolved == PurePosixPath("/"):
        return "is the root folder"
    tree = next((t for t in SYSTEM_TREES if resolved.is_relative_to(t)), None)
    return f"is inside the system tree {tree}" if tree else None


def repository_folder(path: str, platform_home: str | os.PathLike | None = None) -> str:
    """`path` resolved (user folder, symlinks) for a team's repository list; ValueError when it is not
    an existing folder, lies in a system tree, or holds or lies in `platform_home` (SIGNALS_HOME: the
    research agent would read every team's signals there, e.g. a repository `~` and the default store)."""
    if not path:  # realpath("") is the current folder: `--repo "$UNSET"` would register wherever it ran
        raise ValueError("'' must not be empty")
    try:
        resolved = os.path.realpath(os.path.expanduser(path), strict=True)
    except OSError as error:  # missing, a symlink loop, no permission
        raise ValueError(f"{path!r} cannot be resolved: {error.strerror or error}") from None
    if not os.path.isdir(resolved):
        raise ValueError(f"{path!r} is not a folder")
    rule = system_tree_rule(resolved)
    if rule:
        raise ValueError(f"{path!r} resolves to {resolved!r}, which {rule}")
    rule = data_folder_rule(resolved, platform_home)
    if rule:
        raise ValueError(f"{path!r} resolves to {resolved!r}, which {rule}")
    return resolved


def data_folder_rule(resolved: str, platform_home: str | os.PathLike | None) -> str | None:
    """Why the resolved folder `resolved` may not be a repository because of `platform_home` (SIGNALS_HOME:
    the research agent would read every team's signals there), or None."""
    if platform_home is None:
        return None
    home = PurePosixPath(os.path.realpath(platform_home))
    if home.is_relative_to(resolved) or PurePosixPath(resolved).is_relative_to(home):
        return f"holds or lies in the platform's data folder {str(home)!r} (SIGNALS_HOME: every team's signals)"
    return None


def load_team(store: ObjectStore, team_id: int) -> TeamConfig | None:
    """The team's config, or None when it was never set; ValueError when the stored object is invalid."""
    key = team_key(team_id)
    try:
        body = store.get(key)
    except KeyError:
        return None
    except OSError as error:  # a local file its reader may not open: that team's config only
        raise ValueError(f"team config {key} cannot be read: {error.strerror or error}") from None
    try:
        data = json.loads(body)
        config = TeamConfig(**{f.name: data[f.name] for f in fields(TeamConfig) if f.name in data})
        check_team(config)
    except (ValueError, TypeError, RecursionError) as error:  # RecursionError: JSON nested too deep
        raise ValueError(f"team config {key} is invalid: {error}") from None
    if config.team_id != team_id:
        raise ValueError(f"team config {key} is invalid: team_id is {config.team_id}")
    return config


def save_team(store: ObjectStore, config: TeamConfig) -> None:
    check_team(config)
    store.put(team_key(config.team_id), json.dumps(asdict(config), indent=1, sort_keys=True).encode())


def team_limit(store: ObjectStore, team_id: int, name: str, default: int) -> int:
    """The team's own `name` limit when its config sets one, else `default`; an unreadable config
    falls back to the default (a limit never blocks a team's work)."""
    try:
        config = load_team(store, team_id)
    except ValueError:
        return default
    value = getattr(config, name) if config else None
    return default if value is None else value


def gate_reason(config: TeamConfig | None, team_id: int, source_product: str, source_type: str) -> str | None:
    """Why a signal of this team and source may not be processed, or None when it may."""
    if config is None:
        return f"team {team_id} is not configured (run: signals teams set {team_id} --consent)"
    if not config.ai_processing_consent:
        return f"team {team_id} has not consented to AI processing"
    source = f"{source_product}/{source_type}"
    if config.enabled_sources is not None and source not in config.enabled_sources:
        return f"source {source} is not enabled for team {team_id}"
    return None
