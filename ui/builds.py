"""Index updates running behind the app: one at a time per engine, seen by every session.

`Engine.start_build` (rag/engine.py) builds in a thread while the current index goes on
answering, and swaps the new one in when it is written. `Builds` keeps the latest of those
builds beside the shared engine, with what the app shows of it: its last progress report
and ETA, how many uploaded files it is for, and what changed once it is done. Asking for a
build while one runs starts nothing; files saved meanwhile get one more build when it ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from rag.build import BuildReport
from rag.corpus import Document
from rag.engine import Build, Engine
from rag.index import doc_key
from rag.progress import Eta

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Changes:
    """Documents added, updated (same source, other text or metadata) and removed by a build."""
    added: int
    updated: int
    removed: int


def changes(before: Mapping[str, Document], after: Mapping[str, Document]) -> Changes:
    """What a build changed, from the documents (by id) of the index before and after it."""
    old = {d.source: doc_key(d) for d in before.values()}
    new = {d.source: doc_key(d) for d in after.values()}
    both = old.keys() & new.keys()
    return Changes(len(new.keys() - both), sum(old[s] != new[s] for s in both), len(old.keys() - both))


@dataclass
class Job:
    """One background build as the app shows it. `number` counts the engine's builds (1, 2, …),
    so a session can tell which one it has already seen end."""
    number: int
    files: int  # uploaded files it indexes (0: a re-index)
    before: Mapping[str, Document] | None  # the documents it replaces; dropped once `changes` is known
    build: Build = field(default_factory=Build)
    progress: tuple[str, int, int, float | None] | None = None  # the last (stage, done, total, seconds left)
    changes: Changes | None = None
    _eta: Eta = field(default_factory=Eta)

    def record(self, stage: str, done: int, total: int) -> None:
        """The build's `on_progress` (rag.progress), called from its thread."""
        self.progress = (stage, done, total, self._eta(stage, done, total))

    @property
    def finished(self) -> bool:
        return self.build.done

    @property
    def error(self) -> BaseException | None:
        return self.build.error if self.finished else None

    @property
    def report(self) -> BuildReport | None:
        return self.build.report if self.finished else None


class Builds:
    """The index updates of one engine: at most one running, the latest kept for showing."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.job: Job | None = None  # the latest, running or finished
        self.waiting = 0  # files saved while a build ran, for the next one
        self._lock = threading.Lock()

    def running(self) -> Job | None:
        job = self.job
        return job if job is not None and not job.finished else None

    def start(self, files: int = 0) -> Job:
        """Start a build (for `files` uploaded files, 0 for a re-index) unless one is running;
        returns the running one then, and `files` wait for the next."""
        with self._lock:
            if self.running() is not None:
                self.waiting += files
                return self.job
            return self._start(files)

    def poll(self) -> Job | None:
        """The latest build, once it has ended with what it changed; starts the next one when
        files were saved while it ran."""
        with self._lock:
            job = self.job
            if job is None or not job.finished:
                return job
            if job.before is not None:
                if job.error is None:
                    job.changes = changes(job.before, self.engine.index.documents)
                else:
                    log.error("index update %d failed", job.number, exc_info=job.error)
                job.before = None
            if self.waiting:
                files, self.waiting = self.waiting, 0
                return self._start(files)
            return job

    def _start(self, files: int) -> Job:
        job = Job((self.job.number if self.job else 0) + 1, files, self.engine.index.documents)
        job.build = self.engine.start_build(on_progress=job.record)
        self.job = job
        return job
