"""Fit: the reader (rag/reader.py) against the linear sentence scorer, out of sample.

The pool and the questions are eval/fit_answerability.py's (rag.evaluation.bench) (the four dev sets and
xquad.en over the cached index). For every answerable question the candidates' token
states (EmbeddingGemma's contextual token vectors) are computed once and cached in
--work/reader-tokens/ in slices, so an interrupted run resumes where it stopped.

Reported leave one set out (the scorer's and the reader's weights fitted on the other
sets; xquad_ar and xquad.en never train each other): first-sentence and whole-answer
containment and answer length, side by side with the scorer alone (RAG_READER=off), and
a learning curve (share of the training questions used vs held-out first-sentence
containment).

    python eval/fit_reader.py [--top-k 4] [--write-calibration]

With --write-calibration the reader's weights are fitted on all five sets and stored in
rag/calibration.json.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from rag import reader as rd
from rag.answer import select
from rag.config import Settings
from rag.evaluation.bench import READER_SETS as SETS
from rag.evaluation.bench import (
    folds,
    pool_parser,
    reader_pool,
    write_tuning,
)
from rag.fitting import pairwise_weights

ROOT = Path(__file__).resolve().parent.parent

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


def main() -> int:
    ap = pool_parser(__doc__, fit=True)
    ap.add_argument("--top-k", type=int, default=4, help="candidates the reader re-orders")
    args = ap.parse_args()
    t0 = time.time()
    index, items, rows = reader_pool(args)
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
        write_tuning(args.model, {"reader": reader.to_dict() | {
            "source": "eval/fit_reader.py: pairwise weights over the scorer's features and the two MaxSim features, "
                      f"fitted on the answerable questions of xquad_ar, mlqa_ar_dev, persianqa, parsinlu_rc and xquad.en "
                      f"({len(items)}) over the pooled index",
            "calibrated_at": time.strftime("%Y-%m-%d")}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
