"""The assistant as one object: settings + embedder + index, loaded once, shared safely.

The CLI, the Streamlit app and the evaluation all go through `Engine`. Reads take a
reference to the current Index; a rebuild swaps that reference in one assignment, so
a question asked during re-indexing sees either the old or the new index, never a mix.
"""

from __future__ import annotations

import threading

from rag.answer import Answer, answer
from rag.config import Settings
from rag.embedding import Embedder, load_embedder
from rag.index import BuildReport, Index, IndexProblem, OnProgress, build_index


class Engine:
    def __init__(self, settings: Settings | None = None, embedder: Embedder | None = None):
        self.settings = settings or Settings.from_env()
        self._embedder = embedder
        self._index: Index | None = None
        self._build_lock = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(self.settings)
        return self._embedder

    @property
    def index(self) -> Index:
        if self._index is None:
            self._index = Index.load(self.settings.index_dir, self.settings, self.embedder)
        return self._index

    def warm_up(self) -> Engine:
        _ = self.index
        self.embedder.embed_queries(["warm up"])
        return self

    def ask(self, question: str, mode: str | None = None, k: int | None = None, settings: Settings | None = None) -> Answer:
        return answer(self.index, self.embedder, question, settings or self.settings, mode=mode, k=k)

    def build(self, progress: bool = True, on_progress: OnProgress | None = None) -> BuildReport:
        """Re-index the corpus (only new or changed text is embedded) and switch to it."""
        with self._build_lock:
            report = build_index(self.settings, self.embedder, progress=progress, on_progress=on_progress)
            self._index = Index.load(self.settings.index_dir, self.settings, self.embedder)
            return report

    def ensure_index(self, progress: bool = True) -> BuildReport | None:
        """Build the index if it is missing, stale (corpus changed) or incompatible."""
        from rag.corpus import load_project_corpus
        from rag.index import FORMAT

        try:
            idx = Index.load(self.settings.index_dir, self.settings, self.embedder)
        except IndexProblem:
            return self.build(progress)
        loaded = load_project_corpus(self.settings)
        wanted = sorted(d.id for d in loaded.documents)
        have = sorted(idx.documents)
        chunking = idx.manifest.get("chunking", {})
        if (wanted != have or idx.manifest.get("format") != FORMAT
                or chunking.get("chunk_size") != self.settings.chunk_size
                or chunking.get("chunk_overlap") != self.settings.chunk_overlap):
            return self.build(progress)
        self._index = idx
        return None
