"""Fit: the sentence scorer's weights and the scorer's abstention threshold.

The pool is eval/bench_retrieval.py's (the contexts of xquad_ar, mlqa_ar_dev, persianqa
and parsinlu_rc plus news distractors, one cached index). The scorer's weights are
fitted pairwise (a sentence holding the gold answer should outscore one that does not)
and reported leave one set out and on all four sets; the abstention threshold on the
best sentence's score (used where RAG_ANSWERABILITY=off) is the best abstention F1 on
PersianQA with at most --max-wrong wrong abstentions.

    python eval/fit_scorer.py [--margin 3.0] [--max-wrong 0.03] [--write-calibration]

With --write-calibration the weights fitted on all four sets, the margin and the
threshold are stored in rag/calibration.json. The shipped values came from
`--margin 3.0 --max-wrong 0.03` (then part of eval/bench_retrieval.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rag.evaluation.bench import (
    load_sets,
    pool_index,
    query_vectors,
    scorer_tables,
    write_tuning,
)

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "rag" / "bench")
    ap.add_argument("--distractors", type=int, default=1000, help="news passages per language")
    ap.add_argument("--max-contexts", type=int, default=0, help="sample this many contexts per set (0 = all)")
    ap.add_argument("--model", default="embeddinggemma-300m")
    ap.add_argument("--max-wrong", type=float, default=0.1, help="cap on wrong abstentions when calibrating")
    ap.add_argument("--margin", type=float, default=1.0, help="score margin for 2nd/3rd answer sentences (logit units)")
    ap.add_argument("--write-calibration", action="store_true",
                    help="store the weights, the margin and the PersianQA-calibrated threshold in rag/calibration.json")
    args = ap.parse_args()
    if not args.data.exists():
        print(f"no shared data at {args.data} (pass --data)", file=sys.stderr)
        return 2

    index, embedder, settings = pool_index(args)
    _, qs = load_sets(args.data, args.max_contexts)
    qvecs = query_vectors(args.work, embedder, [q.question for q in qs])
    _, weights, cal = scorer_tables(index, qs, qvecs, settings, args.margin, args.max_wrong)
    if args.write_calibration:
        write_tuning(args.model, cal | {
            "sentence_weights": weights,
            "source": "eval/fit_scorer.py: weights fitted on xquad_ar, mlqa_ar_dev, persianqa, parsinlu_rc; "
                      "threshold maximises abstention F1 on persianqa (930 questions, 279 unanswerable)"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
