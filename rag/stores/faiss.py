"""FAISS (sentence vectors) and bm25s (passages) in the index folder: the default store.

Both are written by rag.index with the build (dense.faiss, lexical/) and read with it;
this wraps them in the store interface. Nothing to sync: the folder is the store.
"""

from __future__ import annotations

import numpy as np


class FaissStore:
    kind = "faiss"

    def __init__(self, index):
        self.index = index  # rag.index.Index: .dense (faiss) and .lexical (bm25s)

    def dense(self, q_vec, n, since=None, until=None):
        """FAISS cannot filter by date: rag.retrieval scores a date range exactly over the vectors."""
        n = min(n, self.index.dense.ntotal)
        if n <= 0:
            return []
        scores, ids = self.index.dense.search(np.asarray(q_vec, np.float32).reshape(1, -1), n)
        return [(int(j), float(s)) for j, s in zip(ids[0], scores[0], strict=True) if j >= 0]

    def lexical(self, q_tokens, k, since=None, until=None):
        n = len(self.index.passages)
        if not q_tokens or n == 0 or k <= 0:
            return []
        docs, scores = self.index.lexical.retrieve([q_tokens], k=min(k, n), show_progress=False, n_threads=1)
        return [(int(i), float(s)) for i, s in zip(docs[0], scores[0], strict=True) if s > 0]

    def count(self) -> int:
        return int(self.index.dense.ntotal)

    def close(self) -> None:
        pass
