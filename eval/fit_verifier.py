"""Measure the verifier (rag/verifier.py) and fit how strict mode uses it, on sets it never saw.

The verifier is trained on xquad_ar, xquad.en and mlqa_ar_dev (eval/train_verifier.py);
everything here is PersianQA and ParsiNLU, which it never saw, over eval/bench_retrieval.py's
pooled index (in corpus, PersianQA's unanswerable questions, and every answerable question
again with its article taken out of the corpus; see eval/fit_answerability.py).

1. Sentences of the gold paragraph (PersianQA): does the verifier find the answer
   sentence, and does its best log-odds tell answerable from unanswerable questions?
2. The pipeline: for every question variant the answerability model lets through, the
   scorer's best `top_k` candidates are read. The weight of the verifier's log-odds in the
   candidates' order is the one of WEIGHTS with the most first sentences right; the
   threshold is the highest that abstains on at most --max-wrong of the answerable ones.
   The language pairs it may judge by default (verifier=auto) are those of its training
   (train_verifier.PAIRS) and of this measurement (fa>fa).

    python eval/fit_verifier.py [--max-wrong 0.05] [--write-calibration]
                                [--paragraphs-only | --no-paragraphs] [--persian-half] [--margins]

--margins (table 4 only) measures, with the shipped weight and threshold, how close a
verified second sentence must come to the first (Settings.verified_margin).

--persian-half measures only PersianQA's odd articles, for a verifier trained with
eval/train_verifier.py --persian (which trains on the even ones).

With --write-calibration the weight and threshold are stored in rag/calibration.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rag import answerability as ab
from rag import tuning
from rag.config import Settings
from rag.evaluation import bench
from rag.evaluation.bench import PAIRS, answer_sentences, persian_half
from rag.evaluation.bench import threshold_sweep as sweep
from rag.runtime import cpu_flags_line
from rag.verifier import Verifier, load_verifier

ROOT = Path(__file__).resolve().parent.parent

HELD_OUT = ("persianqa", "parsinlu")
TOP_K = 6
MEASURED_PAIR = "fa>fa"  # PersianQA and ParsiNLU: Persian questions over Persian paragraphs
SCALES = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)  # the verifier's weight, in units of (scorer std / verifier std)


def english_translations(path: Path, min_cosine: float) -> dict[str, str]:
    """PersianQA question id → its English translation (made by eval/translate_questions.py,
    removed: docs/decisions.md says where to find it), where its cosine with the Persian
    question reaches min_cosine (the faithful ones)."""
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    return {r["id"]: r["en"] for r in rows if r["en"] and r["cos"] >= min_cosine}


def gold_paragraphs(data: Path, verifier: Verifier, keep: set[int] | None = None,
                    english: dict[str, str] | None = None) -> None:
    """Table 1: the questions of PersianQA (only its articles `keep`, where given) and of
    ParsiNLU against every sentence of their own paragraph; with `english`, PersianQA's
    translated questions too (en>fa), beside the same questions in Persian."""
    print("\n1. Each question against the sentences of its own paragraph"
          + (" (PersianQA: its odd articles)" if keep is not None else "") + "\n")
    print("| set | questions | answerable | answer sentence ranked first | AUC answerable vs not (best log-odds) "
          "| answerable reaching +0.70 | unanswerable below it |")
    print("|---|---|---|---|---|---|---|")
    runs = [("persianqa", "qa/persianqa/pqa_test.json", keep, None), ("parsinlu", "qa/parsinlu_rc/train.json", None, None)]
    if english:
        runs += [("persianqa translated: in English (en>fa)", runs[0][1], keep, english),
                 ("… the same questions in Persian", runs[0][1], keep, {k: None for k in english})]
    for name, rel, articles, asked in runs:
        d = json.loads((data / rel).read_text("utf-8"))["data"]
        firsts, best, answerable = [], [], []
        for art in tqdm([a for n, a in enumerate(d) if articles is None or n in articles], desc=name, file=sys.stderr):
            for par in art["paragraphs"]:
                texts, _ = answer_sentences(par["context"], [])
                for q in par["qas"]:
                    if not texts or (asked is not None and q["id"] not in asked):
                        continue
                    logits = verifier.score((asked or {}).get(q["id"]) or q["question"], texts)
                    best.append(float(logits.max()))
                    impossible = bool(q.get("is_impossible")) or not q["answers"]
                    answerable.append(not impossible)
                    if not impossible:
                        holds = answer_sentences(par["context"], q["answers"])[1]
                        if holds:
                            firsts.append(int(np.argmax(logits)) in holds)
        best, answerable = np.array(best), np.array(answerable)
        auc = f"{bench.auc(best, answerable):.3f}" if (~answerable).any() else "—"
        caught = f"{np.mean(best[~answerable] < 0.70):.3f}" if (~answerable).any() else "—"
        print(f"| {name} | {len(best)} | {answerable.sum()} | {np.mean(firsts):.3f} | {auc} "
              f"| {np.mean(best[answerable] >= 0.70):.3f} | {caught} |")


def pipeline_rows(index, items, verifier: Verifier) -> list[dict]:
    weights = index.tuning.get("sentence_weights")
    model = index.tuning.part("answerability", ab.Model.from_dict)
    rows = []
    for it in tqdm(items, desc="question variants", file=sys.stderr):
        scored = bench.scored_list(it, weights)
        x, pair = bench.features(index, it, scored)
        top = scored[:TOP_K]
        pos = [r[0] for r in it.refs]
        rows.append({"set": it.set, "answerable": it.answerable, "passes": model.decide(x, pair).answerable,
                     "labels": np.array([bool(it.labels[pos.index(j)]) for _, j, _ in top]),
                     "scores": np.array([s for s, _, _ in top]),
                     "docs": [h.passage.doc_id for _, _, h in top],
                     "chars": np.array([len(index.sentence_text(j)) for _, j, _ in top]),
                     "logits": verifier.score(it.question, [index.sentence_text(j) for _, j, _ in top])
                     if top else np.zeros(0)})
    return rows


def fit(rows: list[dict], max_wrong: float) -> dict:
    """Table 2 and the fitted weight and threshold."""
    order = [r for r in rows if r["answerable"] and r["labels"].any()]
    ratio = np.concatenate([r["scores"] for r in order]).std() / np.concatenate([r["logits"] for r in order]).std()
    print("\n2. The pipeline: first sentence right (answerable questions whose candidates hold the answer)\n")
    print("| verifier weight | " + " | ".join(HELD_OUT) + " | both |")
    print("|---|" + "---|" * (len(HELD_OUT) + 1))
    results = {}
    def first(r, scale):
        key = r["logits"] if np.isinf(scale) else r["scores"] + scale * ratio * r["logits"]
        return bool(r["labels"][int(np.argmax(key))])

    for scale in SCALES + (np.inf,):
        by = [np.mean([first(r, scale) for r in order if r["set"] == s]) for s in HELD_OUT]
        results[scale] = np.mean([first(r, scale) for r in order])
        name = "verifier alone" if np.isinf(scale) else ("scorer alone" if scale == 0 else f"{scale * ratio:.2f}")
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in by) + f" | {results[scale]:.3f} |")
    scale = max(SCALES, key=lambda s: (round(results[s], 6), -s))
    passed = [r for r in rows if r["passes"] and len(r["logits"])]
    ans = np.array([r["answerable"] for r in passed])
    best = np.array([r["logits"].max() for r in passed])
    print(f"\n3. Abstention, among the {len(passed)} question variants the answerability model answers "
          f"({ans.sum()} answerable, {(~ans).sum()} not)\n")
    threshold = sweep(best, ans, np.round(np.arange(-2.0, 2.01, 0.1), 2), max_wrong)
    print(f"\nfitted: weight {scale * ratio:.3f} (first sentence {results[scale]:.3f}), threshold {threshold:+.2f} "
          f"(wrong {np.mean(best[ans] < threshold):.3f}, unanswerable caught {np.mean(best[~ans] < threshold):.3f})")
    return {"weight": round(float(scale * ratio), 4), "threshold": float(threshold), "top_k": TOP_K,
            "pairs": sorted(set(PAIRS) | {MEASURED_PAIR})}


def margins(rows: list[dict], weight: float, threshold: float) -> None:
    """Table 4: how close (score + weight × log-odds) a verified second sentence must come to
    the first to join it (Settings.verified_margin), with the shipped weight and threshold,
    over the answerable variants the verifier answers. As rag.answer.select does, the second
    comes from the first one's document and reaches the threshold (its test for a sentence
    that repeats the first is left out here)."""
    ans = [r for r in rows if r["passes"] and r["answerable"] and len(r["logits"]) and r["logits"].max() >= threshold]
    print(f"\n4. The second sentence of a verified answer ({len(ans)} answerable variants answered)\n")
    print("| verified margin | " + " | ".join(f"{s}: first / whole / chars" for s in HELD_OUT) + " |")
    print("|---|" + "---|" * len(HELD_OUT))
    for margin in (np.inf, 8.0, 6.0, 4.0, 3.0, 2.0, 1.0, 0.0):
        cells = []
        for name in HELD_OUT:
            firsts, wholes, chars = [], [], []
            for r in (r for r in ans if r["set"] == name):
                key = r["scores"] + weight * r["logits"]
                order = np.argsort(-key, kind="stable")
                chosen = [int(order[0])]
                for i in order[1:]:
                    if key[i] < key[order[0]] - margin:
                        break
                    if r["docs"][i] == r["docs"][order[0]] and r["logits"][i] >= threshold:
                        chosen.append(int(i))
                        break
                firsts.append(bool(r["labels"][chosen[0]]))
                wholes.append(bool(r["labels"][chosen].any()))
                chars.append(int(r["chars"][chosen].sum()))
            cells.append(f"{np.mean(firsts):.3f} / {np.mean(wholes):.3f} / {np.mean(chars):.0f}")
        print(f"| {'none' if np.isinf(margin) else f'{margin:g}'} | " + " | ".join(cells) + " |")


def main() -> int:
    ap = bench.pool_parser(__doc__, fit=True)
    ap.add_argument("--max-wrong", type=float, default=0.05)
    ap.add_argument("--paragraphs-only", action="store_true", help="table 1 only (no pooled index)")
    ap.add_argument("--no-paragraphs", action="store_true", help="leave table 1 out")
    ap.add_argument("--persian-half", action="store_true",
                    help="PersianQA's odd articles only: for a verifier trained with train_verifier.py --persian")
    ap.add_argument("--english", type=Path, metavar="FILE.jsonl",
                    help="table 1 also for PersianQA's questions translated into English (eval/translate_questions.py, removed: see docs/decisions.md)")
    ap.add_argument("--min-cosine", type=float, default=0.75,
                    help="with --english: the translations whose cosine with the Persian question reaches this")
    ap.add_argument("--margins", action="store_true",
                    help="only table 4: the verified second sentence's margin, with the shipped weight and threshold")
    args = ap.parse_args()
    if not (args.data / "qa/persianqa/pqa_test.json").exists():
        print(f"no data at {args.data}: pass --data", file=sys.stderr)
        return 2
    print(cpu_flags_line())
    t0 = time.time()
    verifier = load_verifier(Settings.from_env(model=args.model, verifier="on"))
    held = persian_half(args.data) if args.persian_half else None
    if verifier is None:
        print("no verifier for this model (rag/verifier.npz)", file=sys.stderr)
        return 2
    if not args.no_paragraphs:
        gold_paragraphs(args.data, verifier, held,
                        english_translations(args.english, args.min_cosine) if args.english else None)
    if args.paragraphs_only:
        return 0
    index, _, items = bench.load_pool(args)
    rows = pipeline_rows(index, [it for it in items if it.set in HELD_OUT
                                 and (held is None or it.set != "persianqa" or it.article in held)], verifier)
    if args.margins:
        spec = tuning.shipped(args.model)["verifier"]
        margins(rows, float(spec["weight"]), float(spec["threshold"]))
        print(f"\n{time.time() - t0:.0f} s")
        return 0
    spec = fit(rows, args.max_wrong)
    print(f"\n{time.time() - t0:.0f} s")
    if args.write_calibration:
        bench.write_tuning(args.model, {"verifier": spec | {"weights_sha256": tuning.file_sha256(tuning.VERIFIER_WEIGHTS),
            "source": "eval/fit_verifier.py: weight and threshold fitted on persianqa"
                      + (" (its odd articles)" if held is not None else "") + " and parsinlu_rc over the "
                      f"pooled index ({len(rows)} question variants; at most {args.max_wrong:.0%} wrong "
                      "abstentions); the verifier itself trained on xquad_ar, xquad.en and mlqa_ar_dev"
                      + (" and persianqa's even articles" if held is not None else "") + " "
                      "(eval/train_verifier.py); pairs: those of its training (ar>ar, en>ar) and of this "
                      "measurement (fa>fa), where verifier=auto lets it judge"}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
