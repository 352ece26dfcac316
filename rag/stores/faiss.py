"""FAISS (sentence vectors) and BM25 (passages) in the index folder: the default store.

Both are written by rag.index with the build (each segment's dense.faiss and lexical.npz,
searched as one by rag.dense.DenseSearch and rag.lexical.Lexical) and read with it;
this wraps them in the store interface. Nothing to sync: the folder is the store.
"""

from __future__ import annotations

import numpy as np

SENTENCE_SCAN = 8  # sentences searched per passage wanted (a passage has ~4 on average)


class FaissStore:
    kind = "faiss"

    def __init__(self, index):
        self.index = index  # rag.index.Index: .dense (rag.dense) and .lexical (rag.lexical)

    def dense(self, q_vec, k, since=None, until=None):
        """The k·SENTENCE_SCAN closest sentences, the first of each passage (fewer than k
        passages when they crowd the scan). FAISS cannot filter by date: rag.retrieval
        scores a date range exactly over the vectors instead."""
        n = min(k * SENTENCE_SCAN, self.index.dense.ntotal)
        if k <= 0 or n <= 0:
            return []
        scores, ids = self.index.dense.search(np.asarray(q_vec, np.float32).reshape(1, -1), n)
        seen, out = set(), []
        for j, s in zip(ids[0], scores[0], strict=True):
            p = int(self.index.sent_passage[j]) if j >= 0 else -1
            if p >= 0 and p not in seen:  # scores come best first
                seen.add(p)
                out.append((int(j), float(s)))
                if len(out) == k:
                    break
        return out

    def lexical(self, q_tokens, k, since=None, until=None):
        n = len(self.index.passages)
        if not q_tokens or n == 0 or k <= 0:
            return []
        return self.index.lexical.search(q_tokens, min(k, n))

    def count(self) -> int:
        return int(self.index.dense.ntotal)

    def close(self) -> None:
        pass
