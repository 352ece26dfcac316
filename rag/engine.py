"""The assistant as one object: settings + embedder + index, loaded once, shared safely.

The CLI, the Streamlit app and the evaluation all go through `Engine`. Reads take a
reference to the current Index; a rebuild swaps that reference in one assignment, so
a question asked during re-indexing sees either the old or the new index, never a mix.
Builds are serialised across threads and processes by the index folder's build lock
(rag.build.build_lock).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from rag import runtime
from rag.answer import Answer, answer
from rag.build import BuildReport, build_index
from rag.config import Settings
from rag.corpus import CorpusLoad, load_project_corpus
from rag.embedding import Embedder
from rag.index import Index, IndexProblem
from rag.models import load_embedder
from rag.progress import OnProgress
from rag.small_talk import small_talk_vectors
from rag.tuning import Tuning


@dataclass
class Build:
    """A build running in the background (Engine.start_build): done once `thread` has ended,
    with its `report`, or the `error` that stopped it."""
    thread: threading.Thread | None = None
    report: BuildReport | None = None
    error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.thread is not None and not self.thread.is_alive()

    def wait(self, timeout: float | None = None) -> BuildReport | None:
        if self.thread is not None:
            self.thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.report


class Engine:
    def __init__(self, settings: Settings | None = None, embedder: Embedder | None = None,
                 on_progress: OnProgress | None = None):
        """`on_progress(stage, done, total)` (rag.progress) hears of a model download and of
        builds, unless a build is given its own."""
        runtime.configure()  # thread pools for a small CPU, offline model loading (see rag/runtime.py)
        self.settings = settings or Settings.from_env()
        self.on_progress = on_progress
        self._embedder = embedder
        self._index: Index | None = None
        self._reload = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(self.settings, self.on_progress)
        return self._embedder

    @property
    def index(self) -> Index:
        if self._index is None:
            self._index = self._load()
        return self._index

    def _load(self) -> Index:
        # the index first: a missing or damaged one is reported before the model is loaded
        idx = Index.load(self.settings.index_dir, self.settings)
        idx.check_embedder(self.embedder)
        return idx

    def latest_index(self) -> Index:
        """The index, reloaded first when `index/current` points to another build than the one
        loaded: a build written by another process (another API worker, `rag index`). A caller
        takes it once per question, so one question never sees two builds."""
        idx = self._index
        if idx is not None and (self.settings.index_dir / "current").resolve() == idx.path:
            return idx
        with self._reload:  # one reload for the questions that notice the new build together
            if self._index is idx:
                self._index = self._load()
            return self._index

    def warm_up(self) -> Engine:
        from rag import verifier

        _ = self.index
        small_talk_vectors(self.embedder)  # warms the model up, and the first question need not embed them
        verifier.warm_up(self.settings)
        return self

    def ask(self, question: str, mode: str | None = None, k: int | None = None, settings: Settings | None = None,
            tuning: Tuning | None = None) -> Answer:
        """Answer one question; `settings`, `tuning` (rag.tuning): other settings or fitted values for this call."""
        return answer(self.index, self.embedder, question, settings or self.settings, mode=mode, k=k, tuning=tuning)

    def build(self, on_progress: OnProgress | None = None, wait: bool = True, corpus: CorpusLoad | None = None,
              rehash: bool = False) -> BuildReport:
        """Re-index the corpus (only new or changed text is embedded) and switch to it; a
        damaged index is repaired (`rehash`: every file's sha256 is checked first).

        `corpus`: the corpus folder as already read (else it is read now)."""
        on_progress = on_progress or self.on_progress
        docs, skipped, notes = (corpus.documents, corpus.skipped, corpus.notes) if corpus is not None else (None, None, None)
        report = build_index(self.settings, self.embedder, docs, skipped, on_progress=on_progress, wait=wait,
                             notes=notes, rehash=rehash)
        self._index = Index.load(self.settings.index_dir, self.settings, self.embedder)
        return report

    def start_build(self, on_progress: OnProgress | None = None, corpus: CorpusLoad | None = None) -> Build:
        """Re-index in a background thread (see `build`): questions go on being answered from
        the current index until the new one is swapped in. Returns the running `Build`."""
        job = Build()

        def run() -> None:
            try:
                job.report = self.build(on_progress, corpus=corpus)
            except BaseException as e:  # kept for the caller, who decides how to show it
                job.error = e

        job.thread = threading.Thread(target=run, name="rag-build", daemon=True)
        job.thread.start()
        return job

    def ensure_index(self, on_progress: OnProgress | None = None) -> BuildReport | None:
        """Build the index if it is missing, incompatible or stale: anything it was built from
        changed (a document's text, source or metadata, or a setting that changes the build)."""
        on_progress = on_progress or self.on_progress
        try:
            idx = Index.load(self.settings.index_dir, self.settings, self.embedder)
        except IndexProblem:
            return self.build(on_progress)
        corpus = load_project_corpus(self.settings, on_progress)
        if not idx.is_current(self.settings, corpus.documents):
            return self.build(on_progress, corpus=corpus)
        self._index = idx
        return None
