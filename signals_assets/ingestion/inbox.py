"""Claiming inbox objects into batches, and reading a batch back.

The object store is the source of truth, so no signal is lost or processed twice whatever the
timing:
- `inbox/<team_id>/<name>` is written once by the emit facade (one queue per team; a batch takes
  from every queue in turn, so one team's burst cannot push another team's signals back, and after a
  batch that served a backlog the teams without one get the next batch alone, `goes_alone`);
- a claim first reserves its batch key exclusively (`batches/<batch_key>/reserved.json`, created only
  if absent: two claimers that chose one key, each after the newest batch it listed, never share it;
  the second takes the next key), then moves each object to `claimed/<batch_key>/<name>` (a rename,
  or on S3 a conditional claim marker: two claimers can never both win) and records the batch
  manifest `batches/<batch_key>/manifest.json`. A key is reserved only when there is something to
  move; a reserved batch whose moves all lost (another claimer took the objects first) has neither
  claims nor markers, so it is finished, and it gets no partition and no run;
- `buffered_signals` consolidates the claimed objects into the retained raw batch file
  `batches/<batch_key>/signals.jsonl`, records its stage marker, and only then deletes them;
- each batch stage writes `batches/<batch_key>/stages/<stage>` after its store commit.
A batch is *unfinished* until its last stage (grouping) has recorded its marker, or until it is
parked (`batches/<batch_key>/parked`, with the reason) after too many failed attempts; whatever
crashed in between, the next sensor tick (or `signals process`) picks it up again. A batch with
neither claimed objects nor any stage marker predates the markers: it was finished under the rule
of that time (claims consolidated) and counts as finished.

A folder under `claimed/` or `batches/` whose name is no batch key (`claimed/notes/`, put there by
hand or by a tool) is no batch: it is never run, parked or waited for, and the status names it as a
stray folder the pipeline does not process (objects under `claimed/` are emitted by moving them into
`inbox/<team_id>/`).

Finding the unfinished batches costs what lies after the *finished-through mark*
(`batch_marks/finished_through.json`), not the whole history: every batch up to that key is finished
and not parked, so the sensors, `signals process` and each batch run list `claimed/` and `batches/`
from there on (`open_batch_progress`), and move the mark over the finished batches at the front of
what they listed. It passes a batch only `MARK_LAG` after the batch's key time; no batch is keyed at
or before it (`key_floor`); a parked batch stops it (so an unparked one is still listed).
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import io
import json
import logging
import os
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable, Iterator

from signals_assets.fairness import round_robin
from signals_assets.ingestion.emit import INBOX_PREFIX as INBOX
from signals_assets.ingestion.teams import team_limit
from signals_assets.ingestion.validation import folder_team_id, storable_text_rule
from signals_assets.partition_keys import batch_time, is_batch_key, next_batch_key
from signals_assets.recovery.faults import pause_point
from signals_assets.storage.object_store import ObjectStore

log = logging.getLogger(__name__)

CLAIMED = "claimed/"
BATCHES = "batches/"
MAX_BATCHES_PER_CLAIM = 10
# The claimed name of an object whose own name can be no key is one of these, the SHA-256 of its name in
# hexadecimal and `.json` (`claimed_name`); the buffering quarantines it with the rule its name broke.
KEY_TOO_LONG = "key-too-long-"
KEY_NOT_UTF8 = "key-not-utf8-"
KEY_RESERVED = "key-reserved-"
UNUSABLE_KEY_RULES = {
    KEY_TOO_LONG: "must be short enough to move under claimed/<batch>/, 26 bytes longer than inbox/ (S3 keys: at "
    "most 1,024 bytes with the prefix; a local folder: 4,095 bytes of path, 255 per name)",
    KEY_NOT_UTF8: "must be valid UTF-8 (a local inbox file or folder whose name is other bytes)",
    KEY_RESERVED: "must not have the form the claim gives the names it renames (key-too-long-, key-not-utf8- or "
    "key-reserved-, then 64 hexadecimal digits and .json)",
}
_UNUSABLE_KEY_NAME = re.compile(f"({'|'.join(map(re.escape, UNUSABLE_KEY_RULES))})[0-9a-f]{{64}}\\.json")
# How far ahead of the clock a batch key may lie and still be a claim's (see key_floor).
MAX_CLOCK_LEAD = timedelta(days=1)
FINISHED_MARK = "batch_marks/finished_through.json"
# How long after its key's time a finished batch may fall behind the mark: a claimer that listed the
# store before that batch was claimed, then stalled, could otherwise key a new batch before the mark.
MARK_LAG = timedelta(hours=1)
# The batch stages in pipeline order; the batch is finished once the last one has its marker.
BUFFERED, EMBEDDED, GROUPED = "buffered_signals", "signal_embeddings", "report_assignments"
STAGES = (BUFFERED, EMBEDDED, GROUPED)


def manifest_key(batch: str) -> str:
    return f"{BATCHES}{batch}/manifest.json"


def raw_batch_key(batch: str) -> str:
    return f"{BATCHES}{batch}/signals.jsonl"


def stage_marker_key(batch: str, stage: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r} must be one of {', '.join(STAGES)}")
    return f"{BATCHES}{batch}/stages/{stage}"


def parked_key(batch: str) -> str:
    return f"{BATCHES}{batch}/parked"


def mark_stage_done(store: ObjectStore, batch: str, stage: str, run_id: str = "") -> None:
    """Record that `stage` of `batch` has committed its writes (call after the store commit)."""
    body = {"batch_key": batch, "stage": stage, "run_id": run_id, "at": datetime.now(timezone.utc).isoformat()}
    store.put(stage_marker_key(batch, stage), json.dumps(body).encode())


def stage_done(store: ObjectStore, batch: str, stage: str) -> bool:
    return store.exists(stage_marker_key(batch, stage))


def stage_done_by(store: ObjectStore, batch: str, stage: str) -> str | None:
    """The run that recorded `stage` of `batch` done ("" when its marker names none), None while not done."""
    try:
        body = json.loads(store.get(stage_marker_key(batch, stage)))
    except KeyError:
        return None
    except ValueError:  # a marker is written whole, but one put there by hand still says the stage is done
        return ""
    return str(body.get("run_id", "")) if isinstance(body, dict) else ""


def pending_inbox_count(store: ObjectStore, team_id: int | None = None) -> int:
    """Inbox objects waiting to be claimed: every team's, or those in one team's queue."""
    return len(store.list(INBOX if team_id is None else f"{INBOX}{team_id}/"))


def _team_inboxes(store: ObjectStore, max_per_team: int, whole: bool) -> list[tuple[list[str], int]]:
    """Every team's pending inbox keys, oldest first, with its per-batch limit (`max_per_team` unless
    its config says otherwise); listed only up to one more than that limit (which tells a backlog) unless
    `whole`. Objects written before the per-team folders (directly under `inbox/`) form one more queue."""
    folders, loose = store.list_level(INBOX)
    inboxes = [(loose, max_per_team)]
    for folder in folders:
        team = folder_team_id(folder[len(INBOX) : -1])
        limit = max_per_team if team is None else team_limit(store, team, "max_signals_per_batch", max_per_team)
        inboxes.append((store.list(folder, limit=None if whole else limit + 1), limit))
    return inboxes


def _queues(inboxes: list[tuple[list[str], int]]) -> list[list[str]]:
    """Each team's keys for one batch (at most its limit), the team waiting longest first."""
    queues = [keys[:limit] for keys, limit in inboxes if keys]
    return sorted(queues, key=lambda queue: queue[0].rsplit("/", 1)[1])


def next_batch_queues(
    store: ObjectStore, max_per_team: int, previous_batch: str | None
) -> tuple[list[list[str]], bool]:
    """The team queues the next batch takes from (each team's pending inbox keys, oldest first and at most
    its per-batch limit, the team waiting longest first), and whether a team with more pending was left
    out (`goes_alone`)."""
    inboxes = _team_inboxes(store, max_per_team, whole=False)
    queues = _queues(inboxes)
    backlogged = {_inbox_folder(keys[0]) for keys, limit in inboxes if len(keys) > limit}
    served = batch_folders(store, previous_batch) if backlogged and previous_batch else set()
    if not goes_alone(backlogged, len(queues), served):
        return queues, False
    return [queue for queue in queues if _inbox_folder(queue[0]) not in backlogged], True


def goes_alone(backlogged: set[str | None], teams: int, served_before: set[str | None]) -> bool:
    """Whether the next batch goes to the `teams` waiting without a backlog alone, leaving out those with
    one (`backlogged`: inbox folders with more pending than one batch takes of them), given the folders
    the batch before served.

    A team with a backlog fills most of every batch it is in, and a batch is grouped in one run, as long
    as its largest team takes. So when the batch before served a backlog, the other teams get the next
    batch alone: their few signals are not grouped beside a burst's 500. Every other batch at least
    serves the backlogs, so teams sending a few signals at a time cannot hold them back."""
    return bool(backlogged) and len(backlogged) < teams and bool(backlogged & served_before)


def _folder(name: str) -> str | None:
    """The team folder of a name under `inbox/` or `claimed/<batch>/` (None: an object outside any folder)."""
    folder, _, rest = name.partition("/")
    return folder if rest else None


def _inbox_folder(key: str) -> str | None:
    return _folder(key[len(INBOX) :])


def batch_folders(store: ObjectStore, batch: str) -> set[str | None]:
    """The inbox folders (teams) batch `batch` took signals from, as its manifest lists them; none
    without a readable manifest (a claim cut off before it, or a manifest spoilt by hand)."""
    try:
        names = json.loads(store.get(manifest_key(batch)))["objects"]
        return {_folder(name) for name in names}
    except (KeyError, TypeError, ValueError, AttributeError):
        return set()


def reservation_key(batch: str) -> str:
    return f"{BATCHES}{batch}/reserved.json"


def reserve_batch(store: ObjectStore, now: datetime, floor: str | None) -> str:
    """A key for a batch claimed at `now`, after `floor`, that this claimer alone holds: its reservation
    (who and when) is created only if absent, before anything moves into the batch. Two claimers running
    at once can choose one key (each after the newest batch it listed): the one that reserves second
    takes the next key, and the next, until a reservation is its own."""
    batch = next_batch_key(now, floor)
    claimer = f"{socket.gethostname()} pid {os.getpid()}"
    while not store.put_if_absent(
        reservation_key(batch),
        json.dumps({"batch_key": batch, "claimer": claimer, "at": datetime.now(timezone.utc).isoformat()}).encode(),
    ):
        batch = next_batch_key(now, batch)
    return batch


def _claim_keys(store: ObjectStore, batch: str, keys: list[str]) -> tuple[list[str], list[str]]:
    """Move `keys` (inbox keys) into batch `batch` and write its manifest; the names moved (a key
    another claimer moved first is skipped), and the keys the store refused to move, each with the reason
    (they stay in the inbox: a local folder the claimer may not write into must not stop every claim)."""
    names, refused = [], []
    for key in keys:
        name = claimed_name(store, batch, key[len(INBOX) :])
        try:
            moved = store.move(key, f"{CLAIMED}{batch}/{name}")
        except OSError as error:
            refused.append(f"{key}: {error.strerror or error}")
            log.warning("inbox object %s cannot be claimed, it stays in the inbox: %s", key, error)
            continue
        if moved:
            names.append(name)
    if names:
        pause_point("claim")  # moved, no manifest yet
        write_manifest(store, batch, names)
    return names, refused


def claimed_name(store: ObjectStore, batch: str, name: str) -> str:
    """The name under `claimed/<batch>/` of the inbox object `name`: the same, unless that is no key:
    a name that is not UTF-8 (any bytes name a local file; the listing carries them as surrogates) or too
    long for the store (a direct writer's key near the limit: `claimed/<batch>/` is longer than `inbox/`).
    Then `<its folder>/<KEY_NOT_UTF8 or KEY_TOO_LONG><SHA-256 of the name>.json` (without a folder that is
    not UTF-8 itself), which the buffering quarantines. One such object must neither fail every claim nor
    be left behind. A name of that form is renamed too (KEY_RESERVED), so no two objects of a batch share
    a claimed name (a move onto another's name would replace it) and only renamed ones have the form."""
    if storable_text_rule(name):  # a lone surrogate: an undecodable byte of the file name
        prefix = KEY_NOT_UTF8
    elif not store.fits(f"{CLAIMED}{batch}/{name}"):
        prefix = KEY_TOO_LONG
    elif unusable_key_rule(name):
        prefix = KEY_RESERVED
    else:
        return name
    folder, _, rest = name.partition("/")
    short = f"{prefix}{hashlib.sha256(name.encode('utf-8', 'surrogateescape')).hexdigest()}.json"
    return f"{folder}/{short}" if rest and not storable_text_rule(folder) else short


def unusable_key_rule(name: str) -> str | None:
    """The rule its inbox name broke, when the claim renamed the claimed object `name` (`claimed_name`)."""
    renamed = _UNUSABLE_KEY_NAME.fullmatch(name.rpartition("/")[2])
    return UNUSABLE_KEY_RULES[renamed.group(1)] if renamed else None


def write_manifest(store: ObjectStore, batch: str, names: Iterable[str]) -> None:
    body = {"batch_key": batch, "objects": sorted(names), "written_at": datetime.now(timezone.utc).isoformat()}
    store.put(manifest_key(batch), json.dumps(body, indent=1).encode())


@dataclass(frozen=True)
class ClaimResult:
    new_batches: list[str]
    claimed_signals: int
    last_batch: str | None
    refused: list[str]  # inbox keys the store refused to move, each with the reason (`_claim_keys`)


def claim_pending(
    store: ObjectStore,
    max_signals: int,
    last_batch: str | None,
    now: datetime | None = None,
    max_per_team: int | None = None,
    max_batches: int = MAX_BATCHES_PER_CLAIM,
) -> ClaimResult:
    """Claim what is pending into at most `max_batches` batches of at most `max_signals`, keyed after
    `last_batch` (the caller's last claim) and the batches the store holds, as `key_floor` says, each
    key reserved (`reserve_batch`). `last_batch` of the result: the last key reserved."""
    now = now or datetime.now(timezone.utc)
    last_batch = key_floor(store, now, last_batch)
    batches, total, refused = [], 0, []
    for _ in range(min(max_batches, MAX_BATCHES_PER_CLAIM)):
        # Round-robin across the teams' queues, at most `max_per_team` of one team, each team's oldest first.
        queues, left_out = next_batch_queues(store, max_per_team or max_signals, last_batch)
        keys = round_robin(queues, max_signals)
        if not keys:
            break
        last_batch = reserve_batch(store, now, last_batch)
        names, refused_now = _claim_keys(store, last_batch, keys)
        refused += refused_now
        if not names:
            break  # another claimer moved them all first, or the store refused them
        batches.append(last_batch)
        total += len(names)
        if len(names) < max_signals and not left_out:
            break
    return ClaimResult(batches, total, last_batch, refused)


def key_floor(store: ObjectStore, now: datetime, last_batch: str | None = None) -> str | None:
    """The key a batch claimed at `now` must follow: the latest of `last_batch` (the caller's last claim)
    and the batches the store holds (claimed or batch objects), whatever the clock did meanwhile (it may
    have gone back). A key that is no batch key (a cursor set by hand), or one over MAX_CLOCK_LEAD ahead
    of `now` (a partition added by hand and materialised), is passed over: keyed after it, new batches
    would date their signals there. Never before the finished-through mark, however far ahead (a batch
    keyed before it would never be listed again): the lead counts from the mark when it is later."""
    mark = finished_through(store)
    folders = [
        folder for prefix in (CLAIMED, BATCHES) for folder in store.list_level(prefix, _start(prefix, after(mark)))[0]
    ]
    keys = [mark, last_batch, *(folder.split("/")[1] for folder in folders)]
    latest = max(now, batch_time(mark)) if mark else now
    return max((k for k in keys if is_batch_key(k) and batch_time(k) <= latest + MAX_CLOCK_LEAD), default=None)


def claim_all(store: ObjectStore, max_signals: int, max_per_team: int | None = None) -> list[str]:
    """Claim everything pending now, however many batches that takes (the CLI, not the sensor): the
    batches `claim_pending` would form one after the other, from one listing of the inbox (what
    arrives meanwhile waits for the next claim)."""
    inboxes = _team_inboxes(store, max_per_team or max_signals, whole=True)
    previous = key_floor(store, datetime.now(timezone.utc))
    batches: list[str] = []
    last: str | None = None
    for taken in plan_batches(inboxes, max_signals, batch_folders(store, previous) if previous else set()):
        # Each batch keyed at its own time: keyed at the start of a claim of hours, the last ones would fall
        # behind the batches other claimers keyed meanwhile, and the finished-through mark passed over them.
        now = datetime.now(timezone.utc)
        last = reserve_batch(store, now, last or key_floor(store, now))
        if _claim_keys(store, last, taken)[0]:
            batches.append(last)
    return batches


def plan_batches(
    inboxes: list[tuple[list[str], int]], max_signals: int, served_before: set[str | None]
) -> Iterator[list[str]]:
    """Each batch's keys in turn: what `round_robin(_queues(inboxes), max_signals)` takes, batch after
    batch, with the keys taken before removed (moved by this claim or by another claimer first), but
    from the teams without a backlog alone where `goes_alone` says so (`served_before`: the inbox
    folders of the batch before the first). In time linear in the keys (times log teams), plus a look at
    each waiting team per batch: a team is a cursor into its key list, and a heap ordered like `_queues`
    (name of the team's oldest key left, then its listing position) replaces re-filtering and re-sorting
    every team's list per batch."""
    folders = [_inbox_folder(keys[0]) if keys else None for keys, _ in inboxes]
    cursors = [0] * len(inboxes)
    waiting = [(keys[0].rsplit("/", 1)[1], team) for team, (keys, _) in enumerate(inboxes) if keys]
    heapq.heapify(waiting)
    served = served_before
    while waiting:
        backlogged = {team for _, team in waiting if len(inboxes[team][0]) - cursors[team] > inboxes[team][1]}
        skipped = []
        if goes_alone({folders[team] for team in backlogged}, len(waiting), served):
            ordered = [heapq.heappop(waiting) for _ in range(len(waiting))]
            skipped = [entry for entry in ordered if entry[1] in backlogged]
            waiting = [entry for entry in ordered if entry[1] not in backlogged]  # still in heap order
        # A round gives each team one key, so only the first `max_signals` teams can get any.
        visited = [heapq.heappop(waiting)[1] for _ in range(min(max_signals, len(waiting)))]
        ends = {team: min(cursors[team] + inboxes[team][1], len(inboxes[team][0])) for team in visited}
        taken: list[str] = []
        rounds = visited
        while rounds and len(taken) < max_signals:
            for team in rounds[: max_signals - len(taken)]:
                taken.append(inboxes[team][0][cursors[team]])
                cursors[team] += 1
            rounds = [team for team in rounds if cursors[team] < ends[team]]
        yield taken
        served = {folders[team] for team in visited}
        for entry in skipped:
            heapq.heappush(waiting, entry)
        for team in visited:
            keys = inboxes[team][0]
            if cursors[team] < len(keys):
                heapq.heappush(waiting, (keys[cursors[team]].rsplit("/", 1)[1], team))


@dataclass(frozen=True)
class BatchProgress:
    """What the object store says about one batch: stages with a marker, and the park record if any."""

    batch: str
    stages_done: tuple[str, ...]
    has_claims: bool
    parked: dict | None

    @property
    def finished(self) -> bool:
        """Grouped, or from before the markers (no claims, no marker); a parked batch is not finished."""
        return GROUPED in self.stages_done or (not self.has_claims and not self.stages_done)

    @property
    def stray(self) -> bool:
        """A folder under `claimed/` or `batches/` whose name is no batch key (put there by hand, or a
        tool's): no batch. Nothing runs, parks or waits for it; the status names it (`stray_note`)."""
        return not is_batch_key(self.batch)

    @property
    def next_stage(self) -> str:
        return next((stage for stage in STAGES if stage not in self.stages_done), GROUPED)


def stray_folder(progress: BatchProgress) -> str:
    """The stray folder's key: under `claimed/` when it holds objects there, else under `batches/`."""
    return f"{CLAIMED if progress.has_claims else BATCHES}{progress.batch}/"


def stray_note(progress: BatchProgress) -> str:
    """What the status says of a stray folder, and what to do about it."""
    if progress.has_claims:
        return (
            f"stray folder {stray_folder(progress)} (no batch key): the pipeline does not process it, its "
            f"objects are signals of no batch; to emit them, move them into {INBOX}<team_id>/"
        )
    return f"stray folder {stray_folder(progress)} (no batch key): the pipeline does not read it"


def stray_notes(store: ObjectStore, progress: list[BatchProgress]) -> list[str]:
    """What the status says of every stray folder: those of `progress` (an open listing), and those under
    `claimed/` holding objects that no open listing has (sorting before the finished-through mark)."""
    listed = {p.batch for p in progress}
    unlisted = [
        BatchProgress(name, (), True, None)
        for folder in store.list_level(CLAIMED)[0]
        if not is_batch_key(name := folder[len(CLAIMED) : -1]) and name not in listed and store.list(folder, limit=1)
    ]
    return [stray_note(p) for p in sorted([*unlisted, *progress], key=lambda p: p.batch) if p.stray]


def _progress(store: ObjectStore, batch: str, batch_objects: list[str], has_claims: bool) -> BatchProgress:
    """`batch_objects`: the batch's keys under `batches/<batch>/`, relative to that folder."""
    stages = [name[len("stages/") :] for name in batch_objects if name.startswith("stages/")]
    parked = json.loads(store.get(parked_key(batch))) if "parked" in batch_objects else None
    return BatchProgress(batch, tuple(s for s in STAGES if s in stages), has_claims, parked)


def batch_progress(store: ObjectStore, start_after: str = "") -> list[BatchProgress]:
    """Every batch the object store knows of, in key order (one listing of `claimed/` and `batches/`).
    With `start_after`, only the batches listed after it: given a batch key, that batch and every later
    one (`<prefix><batch>/…` sorts after `<prefix><batch>`); given `after(batch)`, the later ones only."""
    claimed = {
        key[len(CLAIMED) :].split("/", 1)[0] for key in store.list(CLAIMED, start_after=_start(CLAIMED, start_after))
    }
    objects: dict[str, list[str]] = {}
    for key in store.list(BATCHES, start_after=_start(BATCHES, start_after)):
        batch, _, rest = key[len(BATCHES) :].partition("/")
        objects.setdefault(batch, []).append(rest)
    return [
        _progress(store, batch, objects.get(batch, []), batch in claimed) for batch in sorted(claimed | set(objects))
    ]


def after(batch: str | None) -> str:
    """A listing start after every key of `batch` and before any later batch's ('/' sorts before '0', and
    batch keys have one length); "" (from the start) for None."""
    return f"{batch}0" if batch else ""


def _start(prefix: str, start_after: str) -> str:
    return f"{prefix}{start_after}" if start_after else ""


def finished_through(store: ObjectStore) -> str | None:
    """The finished-through mark: a batch key, or None (none yet, or unreadable: then everything is listed)."""
    try:
        batch = json.loads(store.get(FINISHED_MARK)).get("batch")
    except (KeyError, ValueError, AttributeError):
        return None
    return batch if is_batch_key(batch) else None


def open_batch_progress(store: ObjectStore, now: datetime | None = None, move_mark: bool = True) -> list[BatchProgress]:
    """The batches after the finished-through mark, in key order: every unfinished or parked batch is
    among them. Then the mark moves over the leading ones that are finished, not parked and older than
    MARK_LAG (a write only when it moves; never for a reader such as `signals status`, `move_mark` off)."""
    now = datetime.now(timezone.utc) if now is None else now
    mark = finished_through(store)
    progress = batch_progress(store, after(mark))
    if not move_mark:
        return progress
    passed = mark
    for batch in progress:
        # A stray folder with claims stops the mark too: listed, it stays named by the status.
        if not batch.finished or batch.parked is not None:
            break
        if batch.stray:
            continue  # a finished folder of no batch (`batches/<batch>_notes/` put there by hand): no work
        if batch_time(batch.batch) > now - MARK_LAG:
            break
        # Neither claims nor markers may be a batch claimed between the listings of claimed/ and batches/
        # (its manifest listed, its claims not): a look at that batch alone, claims first, tells.
        if not batch.stages_done and not progress_of(store, batch.batch).finished:
            break
        passed = batch.batch
    if passed != mark:
        try:
            store.put(FINISHED_MARK, json.dumps({"batch": passed, "at": now.isoformat()}).encode())
        except Exception as error:  # the mark only shortens later listings: nothing may stop the claims for it
            log.warning(f"the finished-through mark stays at {mark}: writing {FINISHED_MARK} failed: {error!r}")
    return progress


def progress_of(store: ObjectStore, batch: str) -> BatchProgress:
    """One batch's progress, from listings of that batch alone: its claims first, like `batch_progress`
    (claims are removed only after the buffering marker is written, so one of them is seen)."""
    has_claims = bool(store.list(f"{CLAIMED}{batch}/", limit=1))
    folder = f"{BATCHES}{batch}/"
    return _progress(store, batch, [key[len(folder) :] for key in store.list(folder)], has_claims)


def unfinished(progress: Iterable[BatchProgress], include_parked: bool = False) -> list[str]:
    """The batches of `progress` whose last stage has not committed; parked ones only when asked. A stray
    folder is none."""
    return [p.batch for p in progress if not p.finished and not p.stray and (include_parked or p.parked is None)]


def unfinished_batches(store: ObjectStore, include_parked: bool = False) -> list[str]:
    """Batches whose last stage has not committed, in key order; parked ones only when asked."""
    return unfinished(open_batch_progress(store), include_parked)


def with_new_batches(progress: list[BatchProgress], batches: list[str]) -> list[BatchProgress]:
    """An open listing (`open_batch_progress`) with the batches a claim formed since, in key order: what a
    listing after the claim would show of them (claims, no marker), without listing again."""
    return sorted([*progress, *(BatchProgress(batch, (), True, None) for batch in batches)], key=lambda p: p.batch)


def earlier_unfinished_batches(store: ObjectStore, batch: str) -> list[str]:
    """Unfinished, unparked batches before `batch`: its grouping must wait for them (key order)."""
    return [b for b in unfinished_batches(store) if b < batch]


def park_batch(store: ObjectStore, batch: str, reason: str, attempts: int) -> None:
    """Stop retrying `batch`: it no longer holds later batches back; `signals unpark` resumes it."""
    body = {"batch_key": batch, "reason": reason, "attempts": attempts, "at": datetime.now(timezone.utc).isoformat()}
    store.put(parked_key(batch), json.dumps(body).encode())


def unpark_batch(store: ObjectStore, batch: str) -> dict:
    """Resume a parked batch with a fresh attempt budget; the park record, kept as `unparked`."""
    if not store.exists(parked_key(batch)):
        raise ValueError(f"batch {batch!r} is not parked")
    record = json.loads(store.get(parked_key(batch)))
    store.put(f"{BATCHES}{batch}/unparked", json.dumps(record).encode())
    store.delete(parked_key(batch))
    return record


def attempts_before_unpark(store: ObjectStore, batch: str) -> int:
    """Attempts already spent when the batch was last unparked (they do not count against the budget)."""
    key = f"{BATCHES}{batch}/unparked"
    return int(json.loads(store.get(key))["attempts"]) if store.exists(key) else 0


def load_batch(store: ObjectStore, batch: str, max_object_bytes: int | None = None) -> list[tuple[str, bytes]]:
    """(object name, body) of every signal in the batch: the raw file once written, else the claims.

    A claim missing from the manifest (crash between move and manifest) is still included: the
    claimed folder is authoritative. A claimed object over `max_object_bytes` is read only up to
    `max_object_bytes + 1` bytes: enough to quarantine it as too large without loading it whole.
    """
    raw = raw_batch_key(batch)
    if store.exists(raw):
        return [(entry["object"], raw_entry_body(entry)) for _, entry in raw_entries(store.get(raw))]
    prefix = f"{CLAIMED}{batch}/"
    read_limit = None if max_object_bytes is None else max_object_bytes + 1
    return [(key[len(prefix) :], _claimed_body(store, prefix, key, read_limit)) for key in store.list(prefix)]


# Control characters other than tab and line breaks, which JSON escapes at six bytes each.
_ESCAPED_CONTROLS = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def raw_line(name: str, body: bytes) -> bytes:
    """The raw batch file's line for an inbox object, kept byte for byte (a record quarantined as not
    UTF-8 stays quarantined when the batch is materialised again). UTF-8 text is kept as text, other
    bytes as base64: escaped in JSON, 256 KiB of control characters took 1.5 MB, and a batch of them
    several GB to write."""
    text = _plain_text(body)
    entry = {"body": text} if text is not None else {"body_base64": base64.b64encode(body).decode()}
    return json.dumps({"object": name, **entry}, ensure_ascii=False).encode() + b"\n"


def _plain_text(body: bytes) -> str | None:
    if _ESCAPED_CONTROLS.search(body):
        return None
    try:
        return body.decode()
    except UnicodeDecodeError:
        return None


def raw_entries(data: bytes) -> Iterator[tuple[bytes, dict]]:
    """(line, entry) of each line of a raw batch file, read one line at a time. Lines end at "\n" only
    (a body may hold U+0085 or U+2028, which `splitlines()` would also break at)."""
    for line in io.BytesIO(data):
        if line.strip():
            yield line, json.loads(line)


def raw_entry_body(entry: dict) -> bytes:
    """The inbox object's bytes, as kept in a line of the raw batch file (also as written before base64:
    undecodable bytes as lone surrogates)."""
    if "body_base64" in entry:
        return base64.b64decode(entry["body_base64"])
    return entry["body"].encode("utf-8", "surrogateescape")


def _claimed_body(store: ObjectStore, prefix: str, key: str, read_limit: int | None) -> bytes:
    """The claimed object's bytes; empty (quarantined as such) when it is listed but no regular file (a
    dangling symlink, a FIFO) or may not be read: one such object must not fail, and so hold back, every
    batch. An object gone since the listing fails the read, to be retried: it may have been moved into
    the batch's file, and quarantining it would lose its signal. Other errors (an unreachable store)
    fail the batch too."""
    try:
        return store.get(key, read_limit)
    except PermissionError:
        return b""
    except KeyError:
        if key not in store.list(prefix):
            raise
        return b""


def consolidate_batch(store: ObjectStore, batch: str, objects: list[tuple[str, bytes]], run_id: str = "") -> None:
    """Write the retained raw batch file and the buffering marker, then remove the claimed objects.

    Call after the accepted signals are committed to the store. The marker is written before the
    claims go, so a batch always has claims or a marker until it is grouped (see the module doc)."""
    raw = raw_batch_key(batch)
    if not store.exists(raw):
        written = io.BytesIO()
        for name, body in objects:
            written.write(raw_line(name, body))
        store.put(raw, written.getvalue())
        if not store.exists(manifest_key(batch)):
            write_manifest(store, batch, [name for name, _ in objects])
    mark_stage_done(store, batch, BUFFERED, run_id)
    for name, _ in objects:
        store.delete(f"{CLAIMED}{batch}/{name}")
