"""FAISS over sentence vectors, in segments: which index type, how it is built, how it is searched.

An index is one base segment (built when the whole index is written) plus small delta
segments appended by incremental updates. The base is exact (`flat`) for small corpora
and approximate above `AUTO_ANN_SENTENCES` sentences (`ivf`: IVF with 8-bit scalar
quantisation, chosen by measurement in eval/bench_scale.py); deltas are always exact.
`DenseSearch` searches every segment and answers like one FAISS index over the live
sentences (deleted documents' sentences are skipped), so rag.retrieval does not need
to know about segments.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

KINDS = ("auto", "flat", "hnsw", "ivf")
AUTO_ANN_SENTENCES = 50_000  # auto: exact search below (~12 ms a query on one core), IVF above
IVF_PROBE = 256  # lists searched by default (eval/bench_scale.py: recall@10 vs exact .973 at 303k sentences, 1,024 lists)
HNSW_EF = 128


def resolve(kind: str, n_sentences: int) -> str:
    """The FAISS type a base segment of n sentences gets for the `faiss` setting."""
    if kind == "auto":
        return "ivf" if n_sentences >= AUTO_ANN_SENTENCES else "flat"
    if kind not in KINDS:
        raise ValueError(f"faiss must be one of {', '.join(KINDS)}, not {kind!r}")
    return kind


def ivf_lists(n: int) -> int:
    """Inverted lists for n vectors: ~2·√n, a power of two, with at least 39 vectors to train each."""
    want = 2 ** round(math.log2(max(1.0, 2 * math.sqrt(n))))
    return max(1, min(want, 2 ** int(math.log2(max(1, n // 39)))))


def build(kind: str, vecs: np.ndarray, on_step=None, seed: int = 0) -> faiss.Index:
    """A FAISS index of this kind over vecs (float32, normalised), inner product."""
    vecs = np.ascontiguousarray(vecs, np.float32)
    n, dim = vecs.shape
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = HNSW_EF
    elif kind == "ivf" and n >= 64 * 39:
        nlist = ivf_lists(n)
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
        index.own_fields = True
        quantizer.this.disown()
        sample = vecs[np.random.default_rng(seed).choice(n, min(n, 64 * nlist), replace=False)]
        index.train(sample)
        index.nprobe = IVF_PROBE
    else:  # flat, or too few vectors to train an IVF
        index = faiss.IndexFlatIP(dim)
    step = 20_000
    for start in range(0, n, step):
        index.add(vecs[start:start + step])
        if on_step:
            on_step(min(start + step, n), n)
    return index


def kind_of(index: faiss.Index) -> str:
    if isinstance(index, faiss.IndexHNSW):
        return "hnsw"
    if isinstance(index, faiss.IndexIVF):
        return "ivf"
    return "flat"


def search_params(index: faiss.Index, probe: int):
    """Per-query FAISS parameters: lists (IVF nprobe) or candidates (HNSW efSearch) searched;
    probe 0: the index's own default (IVF_PROBE, HNSW_EF). Passed to each search, never set on
    the index, which an index loaded with other settings may share."""
    if isinstance(index, faiss.IndexIVF):
        return faiss.SearchParametersIVF(nprobe=probe or IVF_PROBE)
    if isinstance(index, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(efSearch=probe or HNSW_EF)
    return None


class DenseSearch:
    """Several segments' FAISS indexes searched as one index over the live sentences.

    Sentence j of segment i is number offsets[i] + j of the whole (dead ones included);
    `remap` sends it to its position among live sentences (−1: its document was deleted).
    Approximate segments' candidates are re-scored exactly with `vectors` (the live
    sentence vectors), so every score returned is the true cosine."""

    def __init__(self, indexes: list[faiss.Index], lives: list[np.ndarray], vectors: np.ndarray, probe: int = 0):
        self.indexes = indexes
        self.params = [search_params(ix, probe) for ix in indexes]
        live_all = np.concatenate(lives) if lives else np.zeros(0, bool)
        self.remap = np.where(live_all, np.cumsum(live_all) - 1, -1)
        self.offsets = np.cumsum([0] + [ix.ntotal for ix in indexes])
        self.dead = [int((~lv).sum()) for lv in lives]
        self.vectors = vectors
        self.ntotal = int(live_all.sum())
        self.d = vectors.shape[1] if vectors.ndim == 2 else 0

    @property
    def kinds(self) -> list[str]:
        return [kind_of(ix) for ix in self.indexes]

    def search(self, q: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each of shape (1, n), best first, ids among live sentences; −1 pads."""
        q = np.asarray(q, np.float32).reshape(1, -1)
        ids_all, scores_all = [], []
        for index, params, off, dead in zip(self.indexes, self.params, self.offsets, self.dead, strict=False):
            if index.ntotal == 0:
                continue
            want = min(index.ntotal, n if not dead else 2 * n)
            while True:  # sentences of deleted documents are skipped: ask for more until n live ones
                s, ids = index.search(q, want, params=params)
                keep = ids[0] >= 0
                g = self.remap[off + ids[0][keep]]
                s, g = s[0][keep][g >= 0], g[g >= 0]
                if len(g) >= n or want >= index.ntotal or not dead:
                    break
                want = min(index.ntotal, want * 4)
            if kind_of(index) != "flat" and len(g):
                s = self.vectors[g].astype(np.float32) @ q[0]
            ids_all.append(g)
            scores_all.append(s)
        out_s = np.full((1, n), -np.inf, np.float32)
        out_i = np.full((1, n), -1, np.int64)
        if ids_all:
            g = np.concatenate(ids_all)
            s = np.concatenate(scores_all)
            order = np.lexsort((g, -s))[:n]
            out_s[0, :len(order)] = s[order]
            out_i[0, :len(order)] = g[order]
        return out_s, out_i
