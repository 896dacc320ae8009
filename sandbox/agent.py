"""Research agent: finds the repository and the code a report is about.

Runs as a Dagster Pipes process (a local subprocess, or the minimal container of sandbox/Dockerfile
with the repositories mounted read-only), so it needs nothing beyond the standard library and
`dagster_pipes`. Offline it ranks the candidate
repositories' files against the report with BM25.

Extras in:  report {report_id, title, summary, signals: [{signal_id, description, source_product,
            source_type}]}, repositories [{name, path, device?, inode?}] (read-only folders; device and
            inode: the folder its runner checked), max_files (default 5), log_path (JSONL log written here).
Result out: one `report_custom_message` with the result dict {status, repository, repository_ranking,
            findings, confidence, reason} (see `research`): what the agent found, no judgement of
            the report. The agent reports no materialisation: the calling asset reports its own.

`agent.py --timeout-seconds N` (or `SIGNALS_AGENT_TIMEOUT_SECONDS=N` in its environment) ends the
agent after N seconds of wall-clock time (SIGALRM with its default action, which stops the process
even inside C code); the runner uses it because Pipes has no timeout of its own, and it holds when the
runner was killed. `SIGNALS_AGENT_PROGRESS_SECONDS=N` is the longest it goes without an output line
while it indexes (a container's runner stops one silent for its inactivity limit). `--memory-mb N`
caps its address space (the subprocess sandbox has no other memory limit). One process, not a
supervisor and a child: a second interpreter start per report was a fixed cost of every research run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import stat
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

TIMEOUT_ENVIRONMENT_VARIABLE = "SIGNALS_AGENT_TIMEOUT_SECONDS"  # --timeout-seconds when not given
PROGRESS_ENVIRONMENT_VARIABLE = "SIGNALS_AGENT_PROGRESS_SECONDS"
# When the runner gives no interval (the subprocess sandbox, which has no inactivity limit).
DEFAULT_PROGRESS_SECONDS = 10.0
BM25_K1 = 1.2
BM25_B = 0.75
# Saturates repeated query words: a word in every signal counts more than a one-off, not 10x more.
QUERY_K3 = 1.5
# File and folder names are deliberate descriptions of the code, so they count as repeated content.
PATH_WEIGHT = 3
WINDOW_LINES = 10
MAX_FILE_BYTES = 1_000_000
# Bounds the agent's run time and memory on huge monorepos; files past the cap are not read.
MAX_FILES_PER_REPOSITORY = 20_000
# Folders deeper than this are not entered: os.walk recurses once per level (up to Python 3.11), so a
# chain of a thousand nested folders would end the agent with a RecursionError.
MAX_FOLDER_DEPTH = 100
TERMS_IN_REASON = 6
# How sure the agent is that its best finding is the code the report is about. Priority and
# actionability are the report judgement's (signals_assets/reports/judgement.py), not the agent's.
HIGH_CONFIDENCE = "high"
LOW_CONFIDENCE = "low"

SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "bower_components",
        "vendor",
        "vendors",
        "third_party",
        ".venv",
        "venv",
        "site-packages",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
        ".idea",
        ".vscode",
        "dist",
        "build",
        "target",
        ".next",
        ".nuxt",
        "coverage",
    }
)
SKIPPED_FILES = frozenset(
    {
        "package-lock.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "poetry.lock",
        "uv.lock",
        "Cargo.lock",
        "Gemfile.lock",
        "composer.lock",
        "go.sum",
    }
)
BINARY_SUFFIXES = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".bmp",
        ".ico",
        ".webp",
        ".pdf",
        ".zip",
        ".gz",
        ".tgz",
        ".bz2",
        ".xz",
        ".7z",
        ".tar",
        ".jar",
        ".war",
        ".class",
        ".so",
        ".dylib",
        ".dll",
        ".exe",
        ".bin",
        ".o",
        ".a",
        ".pyc",
        ".pyo",
        ".whl",
        ".woff",
        ".woff2",
        ".ttf",
        ".otf",
        ".eot",
        ".mp3",
        ".mp4",
        ".mov",
        ".avi",
        ".wav",
        ".ogg",
        ".sqlite",
        ".db",
        ".parquet",
        ".onnx",
        ".pt",
        ".npy",
        ".npz",
        ".pkl",
    }
)
MINIFIED_SUFFIXES = (".min.js", ".min.css", ".map")

STOP_WORDS = frozenset(
    """
a about above after again against all also am an and any are aren as at be because been before being
below between both but by can cannot could couldn did didn do does doesn doing don down during each
even ever every few for from further get gets getting got had hadn has hasn have haven having he her
here hers herself him himself his how however i if in into is isn it its itself just keep keeps kept
let me more most much must mustn my myself no nor not now of off on once only or other our ours
ourselves out over own please really same seem seems shan she should shouldn so some still such than
thank thanks that the their theirs them themselves then there these they this those through to today
too under until up upon us very via was wasn we were weren what when where which while who whom why
will with won would wouldn yesterday you your yours yourself yourselves
hi hello hey ok okay etc eg ie
def self cls elif return none null true false lambda const var func fn void args kwargs str int
""".split()
)

# Word pieces of identifiers: "getHTTPResponse" -> get, HTTP, Response; "card_payments" -> card, payments.
_WORD_PIECE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


# ---------------------------------------------------------------------------------------------
# Text


@lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """A light suffix stripper, so "declined", "declines" and "decline" meet on one term."""
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def words(text: str) -> list[str]:
    """Lowercased identifier pieces of `text`, stop words and one-letter pieces removed."""
    pieces = (piece.lower() for piece in _WORD_PIECE.findall(text))
    return [piece for piece in pieces if len(piece) > 1 and piece not in STOP_WORDS]


def tokenize(text: str) -> list[str]:
    """Search terms of `text`: camelCase and snake_case split, lowercased, stop words dropped, stemmed."""
    return [stem(word) for word in words(text)]


@dataclass
class Query:
    weights: dict[str, float]  # term -> query weight (saturated term frequency)
    labels: dict[str, str]  # term -> the word the report used most for it, for reasons

    def label(self, terms: Iterable[str]) -> str:
        return ", ".join(self.labels.get(term, term) for term in terms)


def report_texts(report: dict) -> list[str]:
    texts = [report.get("title") or "", report.get("summary") or ""]
    texts += [signal.get("description") or "" for signal in report.get("signals") or []]
    return [text for text in texts if text]


def build_query(report: dict) -> Query:
    """The report's title, summary and signal descriptions as weighted search terms."""
    counts: Counter[str] = Counter()
    spellings: dict[str, Counter[str]] = {}
    for text in report_texts(report):
        for word in words(text):
            term = stem(word)
            counts[term] += 1
            spellings.setdefault(term, Counter())[word] += 1
    weights = {term: (QUERY_K3 + 1) * n / (QUERY_K3 + n) for term, n in counts.items()}
    labels = {term: forms.most_common(1)[0][0] for term, forms in spellings.items()}
    return Query(weights, labels)


# ---------------------------------------------------------------------------------------------
# Repository files


def is_candidate_file(path: Path) -> bool:
    name = path.name
    return (
        name not in SKIPPED_FILES
        and path.suffix.lower() not in BINARY_SUFFIXES
        and not name.lower().endswith(MINIFIED_SUFFIXES)
    )


def iter_source_files(root: Path, visited: Callable[[int], None] = lambda entries: None) -> Iterator[Path]:
    """Regular files under `root` worth reading, in a stable order; vendored and tool folders skipped.
    `visited` is told the number of entries walked so far at each one, yielded or not (a long walk past
    files not worth reading is work too).

    Symlinks are not followed (they could point outside the repository the team allowed us to
    read), and folders on another filesystem than the root (/proc or /dev under "/") or deeper than
    MAX_FOLDER_DEPTH are not entered.
    """
    root_device = os.stat(root).st_dev
    entries = 0
    for folder, dirnames, filenames in os.walk(root):
        deepest = len(Path(folder).relative_to(root).parts) >= MAX_FOLDER_DEPTH
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not deepest
            and d not in SKIPPED_DIRS
            and not d.endswith(".egg-info")
            and _lstat_mode(Path(folder) / d, root_device) is not None
        )
        entries += len(dirnames)
        visited(entries)
        for filename in sorted(filenames):
            entries += 1
            visited(entries)
            path = Path(folder) / filename
            mode = _lstat_mode(path, root_device)
            if is_candidate_file(path) and mode is not None and stat.S_ISREG(mode):
                yield path


def _lstat_mode(path: Path, device: int) -> int | None:
    """The mode of `path` itself (not a symlink's target) if it is on `device`, else None."""
    try:
        status = os.lstat(path)
    except OSError:
        return None
    return status.st_mode if status.st_dev == device else None


def read_text(path: Path) -> str | None:
    """The file's text, or None for binary, empty, oversized, unreadable or non-regular files.

    A device is never opened (opening some has effects); the file is opened without following a
    symlink and without blocking (a fifo swapped in would wait for a writer), checked again, and
    read only up to the size it reports: pseudo-files such as /proc/kmsg report 0 and could stream
    forever.
    """
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as handle:
        try:
            status = os.fstat(descriptor)
            if not stat.S_ISREG(status.st_mode) or not 0 < status.st_size <= MAX_FILE_BYTES:
                return None
            data = handle.read(status.st_size)
        except OSError:
            return None
    if b"\x00" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


@dataclass
class Document:
    repository: str
    path: str  # relative to the repository root, "/"-separated
    term_counts: Counter[str]
    path_terms: frozenset[str]
    length: int


def make_document(repository: str, relative_path: str, text: str) -> Document:
    path_terms = tokenize(str(Path(relative_path).with_suffix("")))
    counts = Counter(tokenize(text))
    for term in path_terms:
        counts[term] += PATH_WEIGHT
    return Document(repository, relative_path, counts, frozenset(path_terms), sum(counts.values()))


@dataclass
class RepositoryIndex:
    name: str
    path: str
    documents: list[Document] = field(default_factory=list)
    readable: bool = True
    truncated: bool = False


def index_repository(name: str, root: str | Path, log: AgentLog | None = None) -> RepositoryIndex:
    """Every readable, non-empty text file of the repository as a BM25 document; says it is still
    indexing in `log` as it goes."""
    log = log or AgentLog()
    index = RepositoryIndex(name, str(root))
    root = Path(root)
    if not root.is_dir() or not os.access(root, os.R_OK | os.X_OK):
        index.readable = False
        return index

    def walked(entries: int) -> None:
        log.still_working(f"indexing repository {name}", entries=entries, files=len(index.documents))

    for count, path in enumerate(iter_source_files(root, walked)):
        if count >= MAX_FILES_PER_REPOSITORY:
            index.truncated = True
            break
        text = read_text(path)
        if text and text.strip():
            index.documents.append(make_document(name, path.relative_to(root).as_posix(), text))
    return index


def check_folder_identity(repository: dict) -> None:
    """ValueError when the repository's folder is not the one its runner checked (the `device` and
    `inode` it recorded, when given). A container's bind mount is resolved only when the container
    starts, so a folder swapped since the check (e.g. for a symlink to the platform's data folder)
    would otherwise be read."""
    if "inode" not in repository:
        return
    try:
        status = os.stat(repository["path"])
    except OSError:  # gone: reported as not found by the index
        return
    if (status.st_dev, status.st_ino) != (repository["device"], repository["inode"]):
        raise ValueError(
            f"repository {repository['name']}: folder {repository['path']} is not the folder checked before "
            f"research started (device {status.st_dev}, inode {status.st_ino} instead of "
            f"{repository['device']}, {repository['inode']}): it was replaced since, and is not read"
        )


# ---------------------------------------------------------------------------------------------
# Ranking


@dataclass
class ScoredDocument:
    document: Document
    score: float
    contributions: dict[str, float]  # matched term -> its share of the score

    @property
    def matched_terms(self) -> list[str]:
        return sorted(self.contributions, key=lambda t: (-self.contributions[t], t))


class Bm25:
    """Okapi BM25 over a fixed set of documents."""

    def __init__(self, documents: list[Document]):
        self.documents = documents
        self.average_length = sum(d.length for d in documents) / len(documents) if documents else 0.0
        self.document_frequency: Counter[str] = Counter()
        for document in documents:
            self.document_frequency.update(document.term_counts.keys())

    def idf(self, term: str) -> float:
        n, df = len(self.documents), self.document_frequency.get(term, 0)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def term_weights(self, query: Query) -> dict[str, float]:
        """Query weight x IDF per query term that occurs in the corpus."""
        return {t: w * self.idf(t) for t, w in query.weights.items() if self.document_frequency.get(t)}

    def score(self, document: Document, weights: dict[str, float]) -> ScoredDocument:
        norm = BM25_K1 * (1 - BM25_B + BM25_B * document.length / (self.average_length or 1.0))
        counts = document.term_counts
        # The smaller side is walked: a report of thousands of words against many small files stays cheap.
        shared = (
            [t for t in weights if t in counts] if len(weights) <= len(counts) else [t for t in counts if t in weights]
        )
        contributions = {t: weights[t] * counts[t] * (BM25_K1 + 1) / (counts[t] + norm) for t in shared}
        return ScoredDocument(document, sum(contributions.values()), contributions)

    def rank(self, query: Query, scored_so_far: Callable[[int], None] = lambda files: None) -> list[ScoredDocument]:
        """Documents matching at least one query term, best first (ties by repository and path).
        `scored_so_far` is told the number of documents scored at each one."""
        weights = self.term_weights(query)
        matching = []
        for number, document in enumerate(self.documents, 1):
            scored = self.score(document, weights)
            if scored.score > 0:
                matching.append(scored)
            scored_so_far(number)
        return sorted(matching, key=lambda s: (-s.score, s.document.repository, s.document.path))


def rank_repositories(indexes: list[RepositoryIndex], ranked: list[ScoredDocument], query: Query) -> list[dict]:
    """Repositories by the score of their best file, with the reason for each score."""
    best: dict[str, ScoredDocument] = {}
    for scored in ranked:
        best.setdefault(scored.document.repository, scored)
    ranking = []
    for index in indexes:
        top = best.get(index.name)
        if not index.readable:
            reason = f"folder {index.path} not found or not readable"
        elif not index.documents:
            reason = "no readable text files"
        elif top is None:
            reason = f"none of its {len(index.documents)} files matches the report's terms"
        else:
            reason = (
                f"best file {top.document.path} (score {top.score:.2f}) matches "
                f"{query.label(top.matched_terms[:TERMS_IN_REASON])}"
            )
        ranking.append({"name": index.name, "score": round(top.score if top else 0.0, 4), "reason": reason})
    return sorted(ranking, key=lambda entry: (-entry["score"], entry["name"]))


def best_line_range(text: str, weights: dict[str, float]) -> tuple[int, int, list[str]]:
    """The ~WINDOW_LINES-line window (1-based, inclusive) covering the most query weight.

    A window's value is the summed weight of the distinct query terms in it, so it favours the
    place where many different report words meet over a line repeating one word; among equal
    windows the one with more matching lines wins, then the earliest. Windows start at a matching line.
    """
    lines = text.splitlines() or [""]
    line_terms = [set(tokenize(line)) & weights.keys() for line in lines]
    best_start, best_value, best_terms = 0, (0.0, 0), set()
    for start, terms in enumerate(line_terms):
        if not terms:
            continue
        window = line_terms[start : start + WINDOW_LINES]
        window_terms = set().union(*window)
        value = (round(sum(weights[t] for t in window_terms), 9), sum(1 for line in window if line))
        if value > best_value:
            best_start, best_value, best_terms = start, value, window_terms
    end = min(best_start + WINDOW_LINES, len(lines))
    return best_start + 1, end, sorted(best_terms, key=lambda t: (-weights[t], t))


@dataclass
class Finding:
    file: str
    start_line: int
    end_line: int
    score: float
    reason: str
    window_terms: list[str]

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "score": round(self.score, 4),
            "reason": self.reason,
        }


def finding_for(scored: ScoredDocument, root: Path, weights: dict[str, float], query: Query) -> Finding:
    """The file's best line range and why the file matched."""
    document = scored.document
    start, end, window_terms = best_line_range(read_text(root / document.path) or "", weights)
    reason = f"matches {query.label(scored.matched_terms[:TERMS_IN_REASON])}"
    path_matches = [t for t in scored.matched_terms if t in document.path_terms]
    if path_matches:
        reason += f" (file name: {query.label(path_matches)})"
    if window_terms:
        reason += f"; lines {start}-{end} mention {query.label(window_terms[:TERMS_IN_REASON])}"
    return Finding(document.path, start, end, scored.score, reason, window_terms)


# ---------------------------------------------------------------------------------------------
# The run


class AgentLog:
    """JSONL log (progress / console / result lines), mirrored to Dagster's log when given one."""

    def __init__(
        self, path: str | Path | None = None, logger: Any = None, progress_seconds: float = DEFAULT_PROGRESS_SECONDS
    ):
        self.path = Path(path) if path else None
        self.logger = logger
        self.progress_seconds = progress_seconds
        self.last_line_at = time.monotonic()
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")

    def _write(self, line: dict) -> None:
        self.last_line_at = time.monotonic()
        if self.path:
            # Appended and closed per line, so a killed agent still leaves a readable log.
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(line, default=str) + "\n")

    def _line(self, kind: str, message: str, data: Any = None) -> dict:
        line = {
            "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "type": kind,
            "message": message,
        }
        if data is not None:
            line["data"] = data
        return line

    def progress(self, message: str, **data: Any) -> None:
        self._write(self._line("progress", message, data or None))
        if self.logger:
            self.logger.info(message)

    def still_working(self, message: str, **data: Any) -> None:
        """A progress line if none was written for `progress_seconds`. Long work calls it as it goes, so
        a runner that stops a silent agent stops only one that is stuck, and the lines stay few."""
        if time.monotonic() - self.last_line_at >= self.progress_seconds:
            self.progress(message, **data)

    def console(self, message: str) -> None:
        self._write(self._line("console", message))
        if self.logger:
            self.logger.warning(message)

    def result(self, result: dict) -> None:
        self._write(self._line("result", f"research finished: {result['status']}", result))


def _pending(reason: str, ranking: list[dict] | None = None) -> dict:
    return {
        "status": "pending_input",
        "repository": None,
        "repository_ranking": ranking or [],
        "findings": [],
        "confidence": LOW_CONFIDENCE,
        "reason": reason,
    }


def research(report: dict, repositories: list[dict], max_files: int = 5, log: AgentLog | None = None) -> dict:
    """Choose the repository and the files a report is about; the whole result the agent reports.

    0 repositories -> pending_input; 1 -> that repository; several -> the one whose best file
    scores highest (pending_input when no file in any of them matches).
    """
    log = log or AgentLog()
    signals = report.get("signals") or []
    log.progress(
        "research started",
        report_id=report.get("report_id"),
        signals=len(signals),
        repositories=[r.get("name") for r in repositories],
    )
    if not repositories:
        return _pending("no candidate repositories configured for this team")
    names = [repository["name"] for repository in repositories]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"repository names must be unique, repeated: {', '.join(duplicates)}")
    for repository in repositories:
        check_folder_identity(repository)

    query = build_query(report)
    top_terms = sorted(query.weights, key=lambda t: (-query.weights[t], t))[:12]
    log.progress("query built", terms=[query.labels[t] for t in top_terms])

    indexes = []
    for repository in repositories:
        index = index_repository(repository["name"], repository["path"], log)
        indexes.append(index)
        if not index.readable:
            log.console(f"repository {index.name}: folder {index.path} not found or not readable")
        elif index.truncated:
            log.console(f"repository {index.name}: only the first {MAX_FILES_PER_REPOSITORY} files were read")
        log.progress(f"indexed repository {index.name}", files=len(index.documents))

    bm25 = Bm25([document for index in indexes for document in index.documents])
    ranked = bm25.rank(query, lambda files: log.still_working("ranking files", files=files))
    ranking = rank_repositories(indexes, ranked, query)
    log.progress("ranked repositories", ranking=ranking)

    if len(indexes) == 1:
        chosen = indexes[0]
        if not chosen.readable:
            return _pending(f"repository {chosen.name}: folder {chosen.path} not found or not readable", ranking)
        selection = f"{chosen.name} is the only candidate repository"
    else:
        if ranking[0]["score"] <= 0:
            return _pending(f"none of the {len(indexes)} candidate repositories matches the report", ranking)
        chosen = next(index for index in indexes if index.name == ranking[0]["name"])
        selection = (
            f"{chosen.name} ranked first of {len(indexes)} repositories "
            f"(score {ranking[0]['score']:.2f}, next {ranking[1]['score']:.2f})"
        )
    log.progress(f"selected repository {chosen.name}", reason=selection)

    weights = bm25.term_weights(query)
    top_files = [s for s in ranked if s.document.repository == chosen.name][: max(0, int(max_files))]
    findings = []
    for scored in top_files:
        log.still_working("reading the best files", files=len(findings))
        findings.append(finding_for(scored, Path(chosen.path), weights, query))
    log.progress("ranked files", findings=[f"{f.file}:{f.start_line}-{f.end_line}" for f in findings])

    if findings:
        top = findings[0]
        reason = (
            f"{selection}; best match {top.file} lines {top.start_line}-{top.end_line}"
            f" ({query.label(top.window_terms[:TERMS_IN_REASON])})"
        )
    else:
        reason = f"{selection}; no file in it matches the report's terms"
    # Two or more distinct report words meeting in one place is what makes a finding specific.
    specific = bool(findings) and len(findings[0].window_terms) >= 2
    return {
        "status": "ready",
        "repository": chosen.name,
        "repository_ranking": ranking,
        "findings": [finding.to_dict() for finding in findings],
        "confidence": HIGH_CONFIDENCE if specific else LOW_CONFIDENCE,
        "reason": reason,
    }


def run_agent(progress_seconds: float) -> None:
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        log = AgentLog(pipes.extras.get("log_path"), pipes.log, progress_seconds)
        try:
            result = research(
                pipes.get_extra("report"),
                pipes.extras.get("repositories") or [],
                int(pipes.extras.get("max_files", 5)),
                log,
            )
        except Exception as error:
            log.console(f"research failed: {type(error).__name__}: {error}\n{traceback.format_exc()}")
            raise
        log.result(result)
        pipes.report_custom_message(result)


# The longest alarm: alarm() takes a C int of seconds (68 years).
MAX_ALARM_SECONDS = 2**31 - 1


def limit_wall_clock(timeout_seconds: float) -> None:
    """End this process after `timeout_seconds` (whole seconds, rounded up, at most the longest
    alarm). The alarm keeps running if the runner dies, so an orphaned agent still stops."""
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(min(max(1, math.ceil(timeout_seconds)), MAX_ALARM_SECONDS))


RUNNER_POLL_SECONDS = 0.5


def end_with_runner(runner_pid: int) -> None:
    """End this process once the runner that started it (`runner_pid`, its parent) is gone, and remove its
    work folder (its current directory, made for this research alone): a runner killed with SIGKILL can
    neither stop it nor clean up, and the round is researched again by another run anyway. Before, such an
    orphan ran on to its time limit and its folder, holding the report's signals, stayed behind."""

    def watch() -> None:
        while os.getppid() == runner_pid:
            time.sleep(RUNNER_POLL_SECONDS)
        shutil.rmtree(os.getcwd(), ignore_errors=True)
        os._exit(1)

    threading.Thread(target=watch, name="runner-watch", daemon=True).start()


def limit_memory(memory_mb: int) -> None:
    """Cap this process's address space at `memory_mb`: a repository made to bloat the index (many
    large files of distinct words, about 16 MB of index per MB of text) ends the agent with a
    MemoryError instead of filling the host's memory."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = memory_mb * 2**20 if hard == resource.RLIM_INFINITY else min(memory_mb * 2**20, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # raising a lower hard limit would fail


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--timeout-seconds",
        type=float,
        # A container's runner passes it so: the image's command runs unchanged.
        default=float(os.environ.get(TIMEOUT_ENVIRONMENT_VARIABLE) or 0),
        help=f"end the agent after this many seconds of wall-clock time (default: ${TIMEOUT_ENVIRONMENT_VARIABLE})",
    )
    parser.add_argument("--memory-mb", type=int, default=0, help="cap the agent's address space at this many MB")
    parser.add_argument(
        "--runner-pid", type=int, default=0, help="end with this parent process, removing the current directory"
    )
    args, _ = parser.parse_known_args(argv)
    if args.runner_pid > 0:
        end_with_runner(args.runner_pid)
    if args.timeout_seconds > 0:
        limit_wall_clock(args.timeout_seconds)
    if args.memory_mb > 0:
        limit_memory(args.memory_mb)
    run_agent(float(os.environ.get(PROGRESS_ENVIRONMENT_VARIABLE) or DEFAULT_PROGRESS_SECONDS))


if __name__ == "__main__":
    main()
