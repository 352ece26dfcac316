"""Indexing progress for the app: an embedder that reports how much new text it embedded.

`Engine.build` only prints progress to the terminal, so the app gives its engine this
wrapper: while `reporting(callback)` is active in a thread, document embedding runs in
slices and calls `callback(done, total)` after each one. Queries are passed straight on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from rag.embedding import Embedder

Progress = Callable[[int, int], None]


class ReportingEmbedder(Embedder):
    def __init__(self, inner: Embedder, slice_size: int = 32):
        self.inner = inner
        self.model_id = inner.model_id
        self.weights_sha256 = inner.weights_sha256
        self.dim = inner.dim
        self.slice_size = slice_size
        self._local = threading.local()  # each browser session builds in its own thread

    @contextmanager
    def reporting(self, callback: Progress) -> Iterator[None]:
        self._local.callback = callback
        try:
            yield
        finally:
            self._local.callback = None

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed_queries(texts)

    def embed_documents(self, texts: list[str], titles: list[str] | None = None, progress: bool = False) -> np.ndarray:
        callback = getattr(self._local, "callback", None)
        if callback is None or len(texts) <= self.slice_size:
            out = self.inner.embed_documents(texts, titles, progress=progress)
            if callback is not None:
                callback(len(texts), len(texts))
            return out
        parts = []
        for i in range(0, len(texts), self.slice_size):
            j = i + self.slice_size
            parts.append(self.inner.embed_documents(texts[i:j], titles[i:j] if titles else None))
            callback(min(j, len(texts)), len(texts))
        return np.concatenate(parts, axis=0)
