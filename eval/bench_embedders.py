"""Benchmark: the ways to run the embedding model, for speed and for agreement with torch float32.

    python eval/bench_embedders.py [--data ../shared/data] [--sentences 512] [--questions 400]
        [--backends torch-float32,torch-bfloat16,openvino-int8,openvino-int8-bf16]
        [--speed-only | --quality-only]

Speed: --sentences Persian/Arabic sentences (half from PersianQA's contexts, half from
XQuAD-ar's, a fixed random sample) embedded as documents,
batch 16, batches formed longest first, the process's threads (2 here), after one
warm-up batch; one run each, so compare the × column, not the third digit.

Agreement, per backend against torch float32:
- cosine of every speed sentence's vector (as a document) and every question's (as a query);
- a small dense retrieval task: --questions dev questions (an equal share of xquad_ar,
  mlqa_ar, persianqa, parsinlu, answerable ones), their contexts and 300 news passages of
  each language as one pool, every sentence embedded by the backend itself (the pool's
  vectors are cached per backend in --work); the top-1 sentence of each question compared
  with float32's, and R@1/R@5 of the question's context among the passages of the top
  sentences.

No AVX2-only host could be measured: none was available, and this CPU cannot stand in for
one (OpenVINO's release builds ignore ISA limits: OV_CPU_MAX_ISA exists only in its
debug builds, and ONEDNN_MAX_CPU_ISA=AVX2 alone makes its int8 layers fail to compile).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ALL = ("torch-float32", "torch-bfloat16", "openvino-int8", "openvino-int8-bf16")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "rag" / "bench-embedders")
    ap.add_argument("--sentences", type=int, default=512)
    ap.add_argument("--questions", type=int, default=400)
    ap.add_argument("--news", type=int, default=300, help="news passages per language in the retrieval pool")
    ap.add_argument("--backends", default=",".join(ALL))
    ap.add_argument("--batch", type=int, default=16)
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--speed-only", action="store_true")
    group.add_argument("--quality-only", action="store_true")
    args = ap.parse_args()
    if not args.data.exists():
        print(f"no shared data at {args.data} (pass --data)", file=sys.stderr)
        return 2

    import numpy as np

    from rag import runtime
    from rag.chunking import chunk
    from rag.config import Settings
    from rag.embedding import native_bf16
    from rag.evaluation.bench import SETS, load_sets, news_distractors, table
    from rag.models import make_embedder
    from rag.text import sentences as split

    runtime.configure()
    backends = [b for b in args.backends.split(",") if b]
    if not native_bf16():
        dropped = [b for b in backends if "bf16" in b or "bfloat16" in b]
        backends = [b for b in backends if b not in dropped]
        if dropped:
            print(f"bfloat16 is not native here: leaving out {', '.join(dropped)}", file=sys.stderr)
    settings = Settings.from_env()
    docs, qs = load_sets(args.data)
    rng = random.Random(0)

    def doc_sentences(doc) -> list[str]:
        return [doc.text[s.start:s.end] for s in split(doc.text) if len(doc.text[s.start:s.end].strip()) > 10]

    doc_by_id = {d.id: d for d in docs}

    def set_sentences(name: str) -> list[str]:
        ids = dict.fromkeys(q.doc_id for q in qs if q.set == name and q.doc_id in doc_by_id)
        return [s for i in ids for s in doc_sentences(doc_by_id[i])]

    pool_fa, pool_ar = set_sentences("persianqa"), set_sentences("xquad_ar")
    half = args.sentences // 2
    speed_texts = rng.sample(pool_fa, min(half, len(pool_fa))) + rng.sample(pool_ar, min(half, len(pool_ar)))

    per_set = args.questions // len(SETS)
    chosen = []
    for name in SETS:
        cand = [q for q in qs if q.set == name and not q.impossible and q.doc_id]
        chosen += random.Random(1).sample(cand, min(per_set, len(cand)))
    pool_docs = list({q.doc_id: doc_by_id[q.doc_id] for q in chosen if q.doc_id in doc_by_id}.values())
    pool_docs += news_distractors(args.data, args.news)
    units = []  # (text, doc id)
    for d in pool_docs:
        for p in chunk(d, settings.chunk_size, settings.chunk_overlap):
            units += [(p.text[s.start:s.end], d.id) for s in split(p.text) if len(p.text[s.start:s.end].strip()) > 10]

    print(runtime.cpu_flags_line())
    print(f"speed: {len(speed_texts)} sentences; retrieval pool: {len(pool_docs)} documents, {len(units)} sentences, "
          f"{len(chosen)} questions", file=sys.stderr)

    speed: dict[str, float] = {}
    latency: dict[str, tuple[float, float]] = {}
    vecs: dict[str, dict[str, np.ndarray]] = {}
    args.work.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1("\n".join([t for t, _ in units] + [q.question for q in chosen] + speed_texts).encode()).hexdigest()[:12]
    for name in backends:
        emb = make_embedder(settings.replace(backend=name.split("-")[0], dtype=_dtype(name)))
        assert emb.backend == name, (emb.backend, name)
        emb.batch_size = args.batch
        if not args.quality_only:
            emb.embed_documents(speed_texts[:args.batch])  # warm-up
            t = time.perf_counter()
            emb.embed_documents(speed_texts)
            speed[name] = len(speed_texts) / (time.perf_counter() - t)
            lat = []
            for q in chosen[:40]:  # one question at a time, with its token vectors, as Engine.ask embeds it
                t = time.perf_counter()
                emb.embed_queries_with_tokens([q.question])
                lat.append(1000 * (time.perf_counter() - t))
            latency[name] = (float(np.median(lat)), float(np.percentile(lat, 95)))
            print(f"{name}: {speed[name]:.1f} sentences/s, question {latency[name][0]:.0f} ms", file=sys.stderr)
        if not args.speed_only:
            cache = args.work / f"{name}-{key}.npz"
            if cache.exists():
                z = np.load(cache)
                vecs[name] = {k: z[k] for k in z.files}
            else:
                t = time.perf_counter()
                vecs[name] = {"speed": emb.embed_documents(speed_texts),
                              "questions": emb.embed_queries([q.question for q in chosen]),
                              "pool": emb.embed_documents([t for t, _ in units])}
                np.savez(cache, **vecs[name])
                print(f"{name}: pool embedded in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        del emb

    ref = "torch-float32"
    rows = []
    unit_docs = [d for _, d in units]
    for name in backends:
        row = [name]
        if not args.quality_only:
            row += [speed[name], speed[name] / speed[ref] if ref in speed else float("nan"),
                    f"{latency[name][0]:.0f} / {latency[name][1]:.0f}"]
        if not args.speed_only and ref in vecs:
            v, r = vecs[name], vecs[ref]
            cos_s = (v["speed"] * r["speed"]).sum(1)
            cos_q = (v["questions"] * r["questions"]).sum(1)
            top = (v["questions"] @ v["pool"].T).argsort(1)[:, ::-1]
            top_ref = (r["questions"] @ r["pool"].T).argmax(1)
            same = float(np.mean(top[:, 0] == top_ref))
            same_doc = float(np.mean([unit_docs[a] == unit_docs[b] for a, b in zip(top[:, 0], top_ref, strict=True)]))
            # how close float32 itself found the two sentences of each question whose top-1 changed
            ref_scores = r["questions"] @ r["pool"].T
            flips = [float(ref_scores[qi, top_ref[qi]] - ref_scores[qi, top[qi, 0]])
                     for qi in range(len(chosen)) if top[qi, 0] != top_ref[qi]]

            def recall(k: int, top=top) -> float:
                hits = 0
                for qi, q in enumerate(chosen):
                    seen = []
                    for j in top[qi]:
                        if unit_docs[j] not in seen:
                            seen.append(unit_docs[j])
                        if len(seen) == k:
                            break
                    hits += q.doc_id in seen
                return hits / len(chosen)

            row += [f"{cos_s.min():.4f} / {cos_s.mean():.5f}", f"{cos_q.min():.4f} / {cos_q.mean():.5f}",
                    f"{same:.3f}", f"{same_doc:.3f}", f"{max(flips):.4f}" if flips else "-", recall(1), recall(5)]
        rows.append(row)
    header = ["backend"]
    if not args.quality_only:
        header += ["sentences/s", "× float32", "one question p50 / p95 ms"]
    if not args.speed_only:
        header += ["cosine, documents (min / mean)", "cosine, questions (min / mean)", "same top-1 sentence",
                   "same top-1 document", "largest float32 gap of a changed top-1", "dense R@1", "dense R@5"]
    print(table(f"Embedding backends (batch {args.batch}, {os.cpu_count()} threads; against torch float32; "
                f"batches longest first)", header, rows))
    return 0


def _dtype(name: str) -> str:
    return "bfloat16" if name.endswith(("bf16", "bfloat16")) else "float32"


if __name__ == "__main__":
    sys.exit(main())
