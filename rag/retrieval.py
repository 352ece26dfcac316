"""Dense, lexical and hybrid retrieval over an Index. Fusion functions are pure."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rag.chunking import Passage
from rag.config import Settings
from rag.index import Index
from rag.text import tokens


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float  # the ranking score of the mode used
    dense: float | None  # cosine with the query, when computed
    lexical: float | None  # BM25 score, when the passage matched lexically
    index: int  # position of the passage in the index

    def to_dict(self) -> dict:
        return {"id": self.passage.id, "doc_id": self.passage.doc_id, "start": self.passage.start,
                "end": self.passage.end, "score": round(self.score, 6),
                "dense": None if self.dense is None else round(self.dense, 6),
                "lexical": None if self.lexical is None else round(self.lexical, 6)}


def weighted_rrf(rankings: list[list[int]], weights: list[float], k: int = 60) -> dict[int, float]:
    """Weighted reciprocal-rank fusion: sum over rankings of w / (k + rank), ranks from 1."""
    fused: dict[int, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + w / (k + rank)
    return fused


def convex_fusion(dense: dict[int, float], lexical: dict[int, float], dense_weight: float,
                  lexical_scale: float | None = None) -> dict[int, float]:
    """w·cosine + (1-w)·BM25/scale: scores, not ranks, so a clear lexical match counts.

    scale defaults to the best BM25 score; `lexical_ceiling` (what a passage holding every
    question word would score) keeps weak matches weak. Items missing from one list get
    that list's smallest score (they ranked below it)."""
    if not dense and not lexical:
        return {}
    top = lexical_scale or max(lexical.values(), default=0.0) or 1.0
    d_floor = min(dense.values(), default=0.0)
    l_floor = min(lexical.values(), default=0.0) / top
    return {i: dense_weight * dense.get(i, d_floor) + (1 - dense_weight) * (lexical[i] / top if i in lexical else l_floor)
            for i in set(dense) | set(lexical)}


def lexical_ceiling(index: Index, query_tokens: list[str], k1: float = 1.5) -> float:
    """An upper bound of the BM25 score for these tokens: Σ idf·(k1+1) over the known ones."""
    n = index.df.get("_n", 1)
    return sum(math.log(1 + (n - index.df[t] + 0.5) / (index.df[t] + 0.5)) * (k1 + 1)
               for t in set(query_tokens) if t in index.df and t != "_n")


def date_mask(index: Index, since: str | None, until: str | None) -> np.ndarray | None:
    """Which passages belong to documents dated within [since, until] (ISO dates, inclusive);
    None when no filter is set. Undated documents are out when a filter is set."""
    if not since and not until:
        return None
    key = (since, until)
    cache = index._date_masks
    if key not in cache:
        ok = {}
        for doc_id, d in index.documents.items():
            day = d.date[:10]
            ok[doc_id] = bool(day) and (not since or day >= since) and (not until or day <= until)
        cache[key] = np.array([ok[p.doc_id] for p in index.passages], dtype=bool)
    return cache[key]


def dense_search(index: Index, q_vec: np.ndarray, k: int, mask: np.ndarray | None = None,
                 dates: tuple[str | None, str | None] = (None, None)) -> list[tuple[int, float]]:
    """The k passages whose best sentence is closest to the query, with that cosine.

    The store (rag.stores) holds sentence vectors; a passage scores as its best sentence,
    which finds the one sentence that answers better than a vector of the whole passage
    does. `mask` (over passages; `dates` the range it stands for): only those passages —
    FAISS scores them exactly over their sentences, Milvus filters by date itself."""
    if mask is not None and index.store.kind == "faiss":
        allowed = mask[index.sent_passage]
        if k <= 0 or not allowed.any():
            return []
        js = np.flatnonzero(allowed)
        sims = index.sentence_vectors[js] @ np.asarray(q_vec, np.float32)
        best: dict[int, float] = {}
        for j in js[np.argsort(-sims, kind="stable")]:
            p = int(index.sent_passage[j])
            if p not in best:
                best[p] = float(index.sentence_vectors[j] @ q_vec)
                if len(best) == k:
                    break
        return list(best.items())
    if k <= 0:
        return []
    hits = [(int(index.sent_passage[j]), s) for j, s in index.store.dense(q_vec, k, *dates)]
    return [(p, s) for p, s in hits if mask is None or mask[p]]


def lexical_search(index: Index, query: str, k: int, mask: np.ndarray | None = None,
                   dates: tuple[str | None, str | None] = (None, None)) -> list[tuple[int, float]]:
    """The k passages with the best BM25 score for the query's normalised tokens (> 0).
    With `mask`, only those passages (FAISS: all are scored, then filtered; Milvus filters by `dates`)."""
    q = tokens(query)
    n = len(index.passages)
    if not q or n == 0:
        return []
    if mask is not None and index.store.kind == "faiss":
        return [(i, s) for i, s in index.store.lexical(q, n) if mask[i]][:k]
    return [(i, s) for i, s in index.store.lexical(q, min(k, n), *dates) if mask is None or mask[i]]


def _collapse(index: Index, ranked: list[int]) -> list[int]:
    """Keep the first of passages whose normalised text is the same."""
    seen, out = set(), []
    for i in ranked:
        group = int(index.dup_of[i])
        if group not in seen:
            seen.add(group)
            out.append(i)
    return out


def retrieve(index: Index, query: str, q_vec: np.ndarray | None, settings: Settings,
             mode: str | None = None, k: int | None = None) -> list[Hit]:
    """The top-k passages for the query; q_vec (the query embedding) is needed unless mode is lexical.
    With `settings.since`/`until` only passages of documents dated in that range are returned."""
    mode = mode or settings.mode
    k = k or settings.k
    n_cand = max(settings.candidates, k)
    mask = date_mask(index, settings.since, settings.until)
    dates = (settings.since, settings.until)
    dense = dense_search(index, q_vec, n_cand, mask, dates) if mode in ("dense", "hybrid") else []
    lexical = lexical_search(index, query, n_cand, mask, dates) if mode in ("lexical", "hybrid") else []
    d_score = dict(dense)
    l_score = dict(lexical)
    if mode == "dense":
        order = [i for i, _ in dense]
        score = d_score
    elif mode == "lexical":
        order = [i for i, _ in lexical]
        score = l_score
    else:
        w = settings.dense_weight
        if settings.fusion == "convex":
            score = convex_fusion(d_score, l_score, w, lexical_ceiling(index, tokens(query)) or None)
        else:
            score = weighted_rrf([[i for i, _ in dense], [i for i, _ in lexical]], [w, 1.0 - w], settings.rrf_k)
        order = sorted(score, key=lambda i: (-score[i], i))
    hits = []
    for i in _collapse(index, order)[:k]:
        dv = d_score.get(i)
        if dv is None and q_vec is not None:
            dv = index.passage_cosine(i, q_vec)
        hits.append(Hit(index.passages[i], float(score[i]), dv, l_score.get(i), i))
    return hits
