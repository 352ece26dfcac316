"""Benchmark: how many sentences an answer needs — concise answers without losing the answer.

The answer is the best sentence plus up to two runners-up (rag.answer.select). This
script measures, on the pooled dev sets of eval/fit_reader.py (reader weights fitted
leave one set out, exactly as there), first-sentence and whole-answer containment and
the mean answer length for each selection rule of a small grid:

- the margin a runner-up must score within of the best sentence (the reader's scale);
- whether runners-up may come from any retrieved document or only the best one's.

The rule is chosen out of sample too: for each held-out set, the shortest rule whose
whole-answer containment on the other sets is within --tolerance of the current rule's
(margin 3, any document); its held-out numbers are reported.

    python eval/bench_concise.py [--tolerance 0.005]

It writes nothing: the shipped margin is the one eval/fit_margins.py chooses on news (the
dialogue gold set) since 2026-12-07; where the runners-up come from and how many are
Settings (extra_sentences, max_sentences).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from rag import reader as rd
from rag.answer import select
from rag.config import Settings
from rag.evaluation.bench import (
    READER_SETS,
    folds,
    pool_parser,
    reader_pool,
)
from rag.fitting import pairwise_weights
from rag.runtime import cpu_flags_line

ROOT = Path(__file__).resolve().parent.parent

MARGINS = (0.5, 1.0, 1.5, 2.0, 3.0)
EXTRA = ("any", "same-document")
MAX_SENTENCES = (2, 3)
CURRENT = (3.0, "any", 3)
DEV = READER_SETS[:4]


def answer_of(index, it, rows, w_scorer, w_reader, top_k, margin, extra, max_sentences):
    if not len(it.refs):
        return False, False, 0
    order = np.argsort(-(rows[:, : len(w_scorer)] @ w_scorer), kind="stable")[:top_k]
    s = rows[order] @ w_reader
    ranked = sorted(((float(s[n]), int(i)) for n, i in enumerate(order)), key=lambda x: -x[0])
    chosen = select([(v, it.refs[i][0], it.refs[i][1]) for v, i in ranked], index,
                    Settings(sentence_margin=margin, extra_sentences=extra, max_sentences=max_sentences))
    pos = {j: i for i, (j, _) in enumerate(it.refs)}
    picked = [pos[j] for _, j, _ in chosen]
    return bool(it.labels[picked[0]]), bool(it.labels[picked].any()), sum(len(index.sentence_text(j)) for _, j, _ in chosen)


def main() -> int:
    ap = pool_parser(__doc__)
    ap.add_argument("--top-k", type=int, default=4)
    ap.add_argument("--tolerance", type=float, default=0.005,
                    help="whole-answer containment a shorter rule may lose on the training sets")
    args = ap.parse_args()
    t0 = time.time()
    index, items, rows = reader_pool(args)
    labels = [it.labels for it in items]
    n_base = len(rd.SENTENCE_FEATURES)
    print(f"{len(items)} answerable questions ready in {time.time() - t0:.0f} s", file=sys.stderr)

    rules = [(m, e, n) for n in MAX_SENTENCES for e in EXTRA for m in MARGINS]
    by = {}  # (held, rule) -> (first, whole, chars) on held; computed for every set with its own fold's weights
    for held, train, test in folds(items):
        w_s = pairwise_weights([rows[k][:, :n_base] for k in train], [labels[k] for k in train])
        w_r = pairwise_weights([rows[k] for k in train], [labels[k] for k in train])
        for rule in rules:
            by[held, rule] = np.array([answer_of(index, items[k], rows[k], w_s, w_r, args.top_k, *rule) for k in test],
                                      float).mean(0)

    print(cpu_flags_line())
    print(f"\nFirst sentence / whole answer / mean characters per rule (held-out set, reader weights leave one set out; "
          f"{len(items)} answerable questions)")
    print("| margin | runners-up from | at most | " + " | ".join(READER_SETS) + " | macro (4 dev sets) |")
    print("|---|---|---|" + "---|" * (len(READER_SETS) + 1))
    for rule in rules:
        cells = [f"{by[s, rule][0]:.3f} / {by[s, rule][1]:.3f} / {by[s, rule][2]:.0f}" for s in READER_SETS]
        m = np.mean([by[s, rule] for s in DEV], axis=0)
        print(f"| {rule[0]} | {rule[1]} | {rule[2]} | " + " | ".join(cells) + f" | {m[0]:.3f} / {m[1]:.3f} / {m[2]:.0f} |")

    def choose(sets):
        base = np.mean([by[s, CURRENT][1] for s in sets])
        ok = [r for r in rules if np.mean([by[s, r][1] for s in sets]) >= base - args.tolerance]
        return min(ok, key=lambda r: np.mean([by[s, r][2] for s in sets]))

    print(f"\nRule chosen on the other dev sets (shortest within {args.tolerance} whole-answer containment of "
          f"margin {CURRENT[0]}, {CURRENT[1]}, at most {CURRENT[2]}), scored on the held-out set")
    print("| held out | rule chosen | current rule | chosen rule |")
    print("|---|---|---|---|")
    picked = []
    for held in DEV:
        rule = choose([s for s in DEV if s != held])
        a, b = by[held, CURRENT], by[held, rule]
        picked.append((a, b))
        print(f"| {held} | {rule[0]}, {rule[1]}, at most {rule[2]} | {a[0]:.3f} / {a[1]:.3f} / {a[2]:.0f} | {b[0]:.3f} / {b[1]:.3f} / {b[2]:.0f} |")
    a = np.mean([p[0] for p in picked], axis=0)
    b = np.mean([p[1] for p in picked], axis=0)
    print(f"| macro | | {a[0]:.3f} / {a[1]:.3f} / {a[2]:.0f} | {b[0]:.3f} / {b[1]:.3f} / {b[2]:.0f} |")
    final = choose(DEV)
    print(f"\nOn all four dev sets: margin {final[0]}, runners-up from {final[1]}, at most {final[2]} sentences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
