"""BM25 over passages kept as raw term frequencies, so that an index can grow by segments.

bm25s stores each (token, passage) score with the corpus's IDF and average length baked
in, so adding one document would mean recomputing every score. Here each segment keeps
only raw counts (`Postings`: token → passages, term frequency, passage lengths), and
`Lexical` scores a query over all segments with statistics of the live passages at
load time. The scoring is bm25s's default ("lucene": idf = ln(1 + (N − df + .5)/(df + .5)),
tf / (tf + k1·(1 − b + b·len/avglen)), k1 = 1.5, b = .75), so rankings are the same as
one bm25s index of the same passages (tests/test_segments.py checks it).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

K1, B = 1.5, 0.75


@dataclass(frozen=True)
class Postings:
    """One segment's term counts: for token t (vocab[t]), passages indices[indptr[t]:indptr[t+1]]
    hold it tf[...] times; lengths[p] is passage p's number of tokens."""

    vocab: list[str]
    indptr: np.ndarray  # int64, len(vocab) + 1
    indices: np.ndarray  # int32, local passage numbers
    tf: np.ndarray  # uint16 (clipped)
    lengths: np.ndarray  # int32, one per passage

    @classmethod
    def from_tokens(cls, passages_tokens: list[list[str]]) -> Postings:
        """Counts of tokenised passages (an empty passage counts as one empty token, as in bm25s)."""
        vocab_ids: dict[str, int] = {}
        rows, cols, counts = [], [], []
        lengths = np.zeros(len(passages_tokens), np.int32)
        for p, toks in enumerate(passages_tokens):
            toks = toks or [""]
            lengths[p] = len(toks)
            for tok, c in Counter(toks).items():
                rows.append(vocab_ids.setdefault(tok, len(vocab_ids)))
                cols.append(p)
                counts.append(c)
        t = np.array(rows, np.int64)
        order = np.argsort(t, kind="stable")  # by token, passages ascending within a token
        indptr = np.zeros(len(vocab_ids) + 1, np.int64)
        np.cumsum(np.bincount(t, minlength=len(vocab_ids)), out=indptr[1:])
        return cls(list(vocab_ids), indptr, np.array(cols, np.int32)[order],
                   np.minimum(np.array(counts, np.int64), 65535).astype(np.uint16)[order], lengths)

    def save(self, folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "lexical.npz", indptr=self.indptr, indices=self.indices, tf=self.tf, lengths=self.lengths)
        (folder / "vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False), "utf-8")
        return [folder / "lexical.npz", folder / "vocab.json"]

    @classmethod
    def load(cls, folder: Path) -> Postings:
        z = np.load(folder / "lexical.npz")
        vocab = json.loads((folder / "vocab.json").read_text("utf-8"))
        return cls(vocab, z["indptr"], z["indices"], z["tf"], z["lengths"])

    def df(self, live: np.ndarray | None = None) -> np.ndarray:
        """Passages holding each token (only the live ones when a mask is given)."""
        if live is None:
            return np.diff(self.indptr)
        c = np.zeros(len(self.indices) + 1, np.int64)
        np.cumsum(live[self.indices], out=c[1:])
        return c[self.indptr[1:]] - c[self.indptr[:-1]]


class Lexical:
    """BM25 over the live passages of several segments, numbered as one list.

    `segments[i]` holds passages offsets[i] … offsets[i] + n_i − 1 of the whole (dead ones
    included); `remap` sends those numbers to positions among the live passages (−1: dead)."""

    def __init__(self, segments: list[Postings], lives: list[np.ndarray | None]):
        self.segments = segments
        self.lives = [np.ones(len(s.lengths), bool) if lv is None else lv for s, lv in zip(segments, lives, strict=True)]
        live_all = np.concatenate(self.lives) if self.lives else np.zeros(0, bool)
        self.remap = np.where(live_all, np.cumsum(live_all) - 1, -1)
        self.offsets = np.cumsum([0] + [len(s.lengths) for s in segments])
        self.n = int(live_all.sum())
        lengths = np.concatenate([s.lengths for s in segments]) if segments else np.zeros(0, np.int32)
        self.avg_len = float(lengths[live_all].mean()) if self.n else 1.0
        # df over live passages, summed over segments; the local id of each token in each segment
        df: dict[str, int] = {}
        self.local: list[dict[str, int]] = []
        for s, lv in zip(segments, self.lives, strict=True):
            counts = s.df(None if lv.all() else lv).tolist()
            if not df:
                df = dict(zip(s.vocab, counts, strict=True))
            else:
                for tok, c in zip(s.vocab, counts, strict=True):
                    df[tok] = df.get(tok, 0) + c
            self.local.append({tok: i for i, tok in enumerate(s.vocab)})
        self.df = {t: c for t, c in df.items() if c > 0} if any(not lv.all() for lv in self.lives) else df
        # k1·(1 − b + b·len/avglen) of every passage, with the live statistics
        self.norms = [(K1 * (1 - B + B * s.lengths / self.avg_len)).astype(np.float32) for s in segments]

    def idf(self, token: str) -> float:
        d = self.df.get(token, 0)
        return float(np.log(1 + (self.n - d + 0.5) / (d + 0.5)))

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """BM25 of every live passage (a repeated query token counts each time, as in bm25s)."""
        out = np.zeros(int(self.offsets[-1]), np.float32)
        for tok in query_tokens:
            if tok not in self.df:
                continue
            idf = np.float32(self.idf(tok))
            for s, local, norm, off in zip(self.segments, self.local, self.norms, self.offsets, strict=False):
                t = local.get(tok)
                if t is None:
                    continue
                a, b = s.indptr[t], s.indptr[t + 1]
                rows = s.indices[a:b]
                tf = s.tf[a:b].astype(np.float32)
                out[off + rows] += idf * tf / (norm[rows] + tf)
        live = self.remap >= 0
        return out[live] if not live.all() else out

    def search(self, query_tokens: list[str], k: int, mask: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The k best live passages with a positive score (positions among live passages), best first."""
        if not query_tokens or self.n == 0 or k <= 0:
            return []
        sc = self.scores(query_tokens)
        if mask is not None:
            sc = np.where(mask, sc, 0.0)
        nz = np.flatnonzero(sc > 0)
        if len(nz) > k:
            nz = nz[np.argpartition(-sc[nz], k - 1)[:k]]
        order = nz[np.lexsort((nz, -sc[nz]))]
        return [(int(i), float(sc[i])) for i in order]
