"""Benchmark and fit: the reader (rag/reader.py) against the linear sentence scorer, out of sample.

The pool and the questions are eval/bench_answerability.py's (the four dev sets and
xquad.en over the cached index). For every answerable question the candidates' token
states (EmbeddingGemma's contextual token vectors) are computed once and cached in
--work/reader-tokens/ in slices, so an interrupted run resumes where it stopped.

Reported leave one set out (the scorer's and the reader's weights fitted on the other
sets; xquad_ar and xquad.en never train each other): first-sentence and whole-answer
containment and answer length, side by side with the scorer alone (RAG_READER=off), and
a learning curve (share of the training questions used vs held-out first-sentence
containment).

    python eval/bench_reader.py [--top-k 4] [--write-calibration]

With --write-calibration the reader's weights are fitted on all five sets and stored in
rag/calibration.json.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))

import bench_answerability as ba  # noqa: E402

from rag import reader as rd  # noqa: E402
from rag.answer import select  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.fitting import pairwise_weights  # noqa: E402

SETS = ["xquad_ar", "mlqa_ar", "persianqa", "parsinlu", "xquad_en"]
SLICE = 512


class TokenCache:
    """Token states by text hash, saved in slices of SLICE texts (resumable)."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.states: dict[str, np.ndarray] = {}
        for f in sorted(folder.glob("*.npz")):
            z = np.load(f)
            vecs = z["vecs"]  # read once per slice file (each z[...] reads it from the archive again)
            for key, start, end in zip(z["keys"].tolist(), z["starts"], z["ends"], strict=True):
                self.states[key] = vecs[start:end]

    @staticmethod
    def key(kind: str, text: str) -> str:
        return hashlib.sha1(f"{kind}\n{text}".encode()).hexdigest()

    def fill(self, kind: str, texts: list[str], encode) -> None:
        todo = sorted({t for t in texts if self.key(kind, t) not in self.states}, key=len, reverse=True)
        for start in tqdm(range(0, len(todo), SLICE), desc=f"token states ({kind})", disable=not todo, file=sys.stderr):
            part = todo[start:start + SLICE]
            states = encode(part)
            keys = [self.key(kind, t) for t in part]
            ends = np.cumsum([len(s) for s in states])
            vecs = np.concatenate(states).astype(np.float16)
            np.savez(self.folder / f"{kind}-{keys[0][:12]}.npz", keys=np.array(keys),
                     starts=np.concatenate([[0], ends[:-1]]), ends=ends, vecs=vecs)
            for k, s in zip(keys, states, strict=True):
                self.states[k] = s.astype(np.float16)

    def get(self, kind: str, text: str) -> np.ndarray:
        return self.states[self.key(kind, text)].astype(np.float32)


def candidate_rows(index, items, cache: TokenCache) -> list[np.ndarray]:
    """Per item, its candidates' rows of rd.ALL_FEATURES."""
    out = []
    for it in items:
        q = cache.get("query", it.question)
        extra = np.array([rd.maxsim(q, cache.get("document", index.sentence_text(j))) for j, _ in it.refs],
                         np.float32).reshape(-1, len(rd.FEATURES))
        out.append(np.hstack([it.feats, extra]))
    return out


def answer_of(index, it, rows: np.ndarray, w_scorer: np.ndarray, w_reader: np.ndarray | None, top_k: int,
              margin: float) -> tuple[bool, bool, int]:
    """(first sentence holds the answer, the whole answer does, its length) for one question."""
    if not len(it.refs):
        return False, False, 0
    base = rows[:, : len(w_scorer)] @ w_scorer
    order = np.argsort(-base, kind="stable")
    if w_reader is None:
        ranked = [(float(base[i]), i) for i in order]
    else:
        top = order[:top_k]
        s = rows[top] @ w_reader
        ranked = sorted(((float(s[n]), int(i)) for n, i in enumerate(top)), key=lambda x: -x[0])
    chosen = select([(s, it.refs[i][0], it.refs[i][1]) for s, i in ranked], index, Settings(sentence_margin=margin))
    pos = {j: i for i, (j, _) in enumerate(it.refs)}
    picked = [pos[j] for _, j, _ in chosen]
    return bool(it.labels[picked[0]]), bool(it.labels[picked].any()), sum(len(index.sentence_text(j)) for _, j, _ in chosen)


def folds(items):
    for held in SETS:
        banned = {"xquad_ar", "xquad_en"} if held in ("xquad_ar", "xquad_en") else {held, "xquad_en"}
        yield held, [k for k, it in enumerate(items) if it.set not in banned], [k for k, it in enumerate(items) if it.set == held]


def main() -> int:
    ap = ba.pool_parser(__doc__)
    ap.add_argument("--top-k", type=int, default=4, help="candidates the reader re-orders")
    args = ap.parse_args()
    t0 = time.time()
    index, embedder, items = ba.load_pool(args)
    items = [it for it in items if it.answerable and it.in_corpus]
    cache = TokenCache(args.work / f"reader-tokens-{args.model}")
    cache.fill("query", [it.question for it in items], lambda t: embedder.embed_queries_with_tokens(t)[1])
    cache.fill("document", [index.sentence_text(j) for it in items for j, _ in it.refs], embedder.document_tokens)
    rows = candidate_rows(index, items, cache)
    labels = [it.labels for it in items]
    n_base = len(rd.SENTENCE_FEATURES)
    print(f"{len(items)} answerable questions, token states ready in {time.time() - t0:.0f} s", file=sys.stderr)

    results = {"scorer": {}, "reader": {}}
    curve = {}
    for held, train, test in folds(items):
        w_s = pairwise_weights([rows[k][:, :n_base] for k in train], [labels[k] for k in train])
        w_r = pairwise_weights([rows[k] for k in train], [labels[k] for k in train])
        for name, w in (("scorer", None), ("reader", w_r)):
            results[name][held] = np.array([answer_of(index, items[k], rows[k], w_s, w, args.top_k, args.margin)
                                            for k in test], float).mean(0)
        rng = np.random.default_rng(0)
        for share in (0.1, 0.25, 0.5, 1.0):
            part = [train[i] for i in rng.permutation(len(train))[: max(50, int(share * len(train)))]]
            w_p = pairwise_weights([rows[k] for k in part], [labels[k] for k in part])
            curve.setdefault(share, {})[held] = np.mean([answer_of(index, items[k], rows[k], w_s, w_p, args.top_k,
                                                                   args.margin)[0] for k in test])

    print(f"\nFirst sentence / whole answer (≤3 sentences, margin {args.margin}) / mean answer characters, "
          f"answerable questions, leave one set out; the reader re-orders the scorer's top {args.top_k}")
    print("| set | scorer (RAG_READER=off) | reader |")
    print("|---|---|---|")
    for s in SETS:
        a, b = results["scorer"][s], results["reader"][s]
        print(f"| {s} | {a[0]:.3f} / {a[1]:.3f} / {a[2]:.0f} | {b[0]:.3f} / {b[1]:.3f} / {b[2]:.0f} |")
    for name in ("scorer", "reader"):
        m = np.mean([results[name][s] for s in SETS[:4]], axis=0)
        print(f"| macro of the four dev sets, {name} | {m[0]:.3f} / {m[1]:.3f} / {m[2]:.0f} | |")
    print("\nLearning curve: share of each fold's training questions → held-out first-sentence containment")
    print("| share | " + " | ".join(SETS) + " | macro (4 sets) |")
    print("|---" * (len(SETS) + 2) + "|")
    for share, by in curve.items():
        print(f"| {share:.2f} | " + " | ".join(f"{by[s]:.3f}" for s in SETS) + f" | {np.mean([by[s] for s in SETS[:4]]):.3f} |")

    if args.write_calibration:
        w = pairwise_weights(rows, labels)
        reader = rd.Reader({"bias": 0.0} | {f: float(v) for f, v in zip(rd.ALL_FEATURES, w, strict=True)}, args.top_k)
        ba.br.write_tuning(args.model, {"reader": reader.to_dict() | {
            "source": "eval/bench_reader.py: pairwise weights over the scorer's features and the two MaxSim features, "
                      f"fitted on the answerable questions of xquad_ar, mlqa_ar_dev, persianqa, parsinlu_rc and xquad.en "
                      f"({len(items)}) over the pooled index",
            "calibrated_at": time.strftime("%Y-%m-%d")}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
