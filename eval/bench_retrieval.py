"""Benchmark: retrieval (lexical / dense / hybrid), answer containment, abstention,
indexing speed and ask latency on the shared dev sets.

One mixed-language corpus is pooled from the contexts of xquad_ar, mlqa_ar_dev,
persianqa and parsinlu_rc plus news distractors (fars_news, saudinewsnet); every
question is asked against the whole pool. Prints tables; writes nothing in the repo
(eval/fit_scorer.py refits the sentence scorer and the abstention threshold from the
same pool and writes them to rag/calibration.json).

    python eval/bench_retrieval.py [--data ../shared/data] [--distractors 1000]
        [--sweep] [--speed N]

The index (and query vectors) are cached in --work (default ~/.cache/rag/bench), so a
re-run embeds nothing new. The pool and its helpers are rag.evaluation.bench.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from rag.build import build_index
from rag.config import Settings
from rag.corpus import Document
from rag.engine import Engine
from rag.evaluation.bench import (
    SETS,
    answer_metrics,
    load_sets,
    news_distractors,
    query_vectors,
    retrieval_metrics,
    scorer_tables,
    table,
)
from rag.index import Index
from rag.models import load_embedder
from rag.progress import TerminalProgress

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "rag" / "bench")
    ap.add_argument("--distractors", type=int, default=1000, help="news passages per language")
    ap.add_argument("--max-contexts", type=int, default=0, help="sample this many contexts per set (0 = all)")
    ap.add_argument("--model", default="embeddinggemma-300m")
    ap.add_argument("--sweep", action="store_true", help="also sweep fusion weights and answer settings")
    ap.add_argument("--latency", type=int, default=100, help="questions timed end to end through Engine.ask")
    ap.add_argument("--index-only", action="store_true")
    ap.add_argument("--max-wrong", type=float, default=0.1, help="cap on wrong abstentions when calibrating")
    ap.add_argument("--margin", type=float, default=1.0, help="score margin for 2nd/3rd answer sentences (logit units)")
    ap.add_argument("--speed", type=int, default=0, metavar="N",
                    help="also time indexing N pooled documents from scratch (no cached vectors)")
    ap.add_argument("--speed-batch", type=int, nargs="*", default=[], metavar="B",
                    help="with --speed, also time these embedding batch sizes")
    args = ap.parse_args()
    if not args.data.exists():
        print(f"no shared data at {args.data} (pass --data)", file=sys.stderr)
        return 2

    docs, qs = load_sets(args.data, args.max_contexts)
    distractors = news_distractors(args.data, args.distractors)
    settings = Settings(project_root=args.work, index_dir=args.work / f"index-{args.model}", model=args.model)
    embedder = load_embedder(settings)
    print(f"corpus: {len(docs)} contexts + {len(distractors)} distractors; questions: {len(qs)}", file=sys.stderr)
    report = build_index(settings, embedder, documents=docs + distractors, on_progress=TerminalProgress())
    print(json.dumps({k: v for k, v in report.to_dict().items() if k != "skipped"}), file=sys.stderr)
    if args.index_only:
        return 0
    index = Index.load(settings.index_dir, settings, embedder)
    qvecs = query_vectors(args.work, embedder, [q.question for q in qs])
    ans_idx = [i for i, q in enumerate(qs) if not q.impossible]
    aq, av = [qs[i] for i in ans_idx], qvecs[ans_idx]

    modes = ["lexical", "dense", "hybrid"]
    rm = retrieval_metrics(index, aq, av, settings, modes)
    rows = []
    for m in modes:
        macro1 = np.mean([rm[m][s]["r1"] for s in SETS])
        macro5 = np.mean([rm[m][s]["r5"] for s in SETS])
        rows.append([m] + [rm[m][s]["r5"] for s in SETS] + [float(macro1), float(macro5)])
    print(table(f"Recall@5 per set and macro (settings: dense_weight={settings.dense_weight}, rrf_k={settings.rrf_k}, "
                f"{index.manifest['corpus']['passages']} passages)",
                ["method"] + [f"{s} R@5" for s in SETS] + ["macro R@1", "macro R@5"], rows))
    detail = []
    for m in modes:
        for s in SETS:
            d = rm[m][s]
            detail.append([m, s, d["r1"], d["r5"], d["r20"], d["mrr"]])
    print(table("Per set", ["method", "set", "R@1", "R@5", "R@20", "MRR@10"], detail))

    cands, weights, _ = scorer_tables(index, qs, qvecs, settings, args.margin, args.max_wrong)

    if args.sweep:
        sweep(index, aq, av, cands, weights, settings)

    if args.speed:
        speed(args, settings, embedder, distractors + docs)
    engine = Engine(settings, embedder)
    engine._index = index
    engine.warm_up()
    rng = random.Random(1)
    lat = []
    for q in rng.sample(qs, min(args.latency, len(qs))):
        t = time.perf_counter()
        engine.ask(q.question)
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    if lat:
        print(table("Warm ask latency (Engine.ask, hybrid)", ["n", "median ms", "p95 ms"],
                    [[len(lat), statistics.median(lat), lat[int(0.95 * (len(lat) - 1))]]]))
    return 0


def speed(args, settings: Settings, embedder, docs: list[Document]) -> None:
    """Indexing throughput from scratch (no cached vectors): a throwaway index of a
    deterministic sample of the pool, timed end to end by build_index."""
    import tempfile

    sample = random.Random(2).sample(docs, min(args.speed, len(docs)))
    rows = []
    for batch in sorted({settings.batch_size, *args.speed_batch}):
        embedder.batch_size = batch
        with tempfile.TemporaryDirectory() as tmp:
            s = settings.replace(project_root=Path(tmp), index_dir=Path(tmp) / "index")
            r = build_index(s, embedder, documents=sample)
        rows.append([batch, r.documents, r.passages, r.embedded_sentences, r.seconds,
                     r.passages / r.seconds, r.embedded_sentences / r.seconds])
    embedder.batch_size = settings.batch_size
    print(table(f"Indexing from scratch ({embedder.model_id}, {embedder.dtype}, everything the answerer needs)",
                ["batch", "documents", "passages", "sentences embedded", "seconds", "passages/s", "sentences/s"], rows))


def sweep(index, aq, av, cands, weights, settings) -> None:
    rows = []
    grid = [("rrf", w, rk) for w in (0.5, 0.6, 0.7, 0.8, 0.85, 0.9) for rk in (10, 60)]
    grid += [("convex", w, 0) for w in (0.5, 0.6, 0.7, 0.8, 0.9)]
    for fusion, w, rk in grid:
        s = settings.replace(fusion=fusion, dense_weight=w, rrf_k=rk or settings.rrf_k)
        rm = retrieval_metrics(index, aq, av, s, ["hybrid"])["hybrid"]
        rows.append([fusion, w, rk or "-"] + [rm[x]["r5"] for x in SETS] + [float(np.mean([rm[x]["r1"] for x in SETS])),
                                                                            float(np.mean([rm[x]["r5"] for x in SETS]))])
    print(table("Fusion sweep (hybrid)", ["fusion", "dense_weight", "rrf_k"] + [f"{x} R@5" for x in SETS] + ["macro R@1", "macro R@5"], rows))
    rows = []
    for margin in (0.25, 0.5, 1.0, 1.5, 2.0, 3.0):
        m, _ = answer_metrics(index, cands, weights, margin)
        rows.append([margin, float(np.mean(list(m["first"].values()))), float(np.mean(list(m["whole"].values())))])
    print(table("Answer margin sweep (fitted weights)", ["margin", "first macro", "whole macro"], rows))


if __name__ == "__main__":
    sys.exit(main())
