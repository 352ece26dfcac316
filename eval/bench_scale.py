"""Benchmark: the index at 10k, 30k and 100k passages — build, adding 100 documents, merging,
disk, load time, RSS with the model, retrieval latency, ANN recall, and what ANN costs.

    python eval/bench_scale.py [--data ../shared/data] [--sizes 10000 30000 100000] [--ann]

Corpus: every QA context of the four dev sets (as in eval/bench_retrieval.py, so that
answers can be checked) plus whole news articles from fars_news and saudinewsnet, shuffled
with seed 0, until the size in passages is reached; the 100 documents added are the
next 100 articles. BM25 always runs over the real text.

Vectors: embedding ~330k sentences with the real model takes hours on 2 cores, so
`BenchEmbedder` returns the real EmbeddingGemma-300m vector of every sentence the bench
cache holds (~/.cache/rag/bench: the 15,299 sentences of the dev contexts and 2,000 news
leads, embedded by eval/bench_retrieval.py) and, for any other sentence, a synthetic
vector fixed by the sentence's hash: normalise(x_a + 0.9·g), x_a a real vector and g a
Gaussian mix of 8 centred real vectors (chosen so that the synthetic vectors' cosine to
their nearest neighbour matches the real ones': median .57 for both at 7.6k vectors).
Query vectors are the real ones of the dev questions (bench cache). Embedding time is
left out of every timing and reported as what the real model would take.

Everything runs in this process except load time and RSS, measured in a fresh process
that loads the real model first.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from rag import build as build_mod
from rag import dense as dense_mod
from rag import index as index_mod
from rag import runtime
from rag.answer import answer
from rag.build import build_index
from rag.chunking import chunk
from rag.config import Settings
from rag.embedding import Embedder
from rag.evaluation import load_distractors
from rag.evaluation.bench import NEWS, SETS, load_sets, news_distractors, rank_of, table
from rag.index import Index, index_files
from rag.retrieval import retrieve

ROOT = Path(__file__).resolve().parent.parent

REAL_RATE = 32.0  # sentences/s of the real model in bfloat16 on these 2 cores (shared/MODELS.md)


class BenchEmbedder(Embedder):
    """Real vectors where the bench cache has them, else synthetic ones fixed by the text."""

    model_id = "embeddinggemma-300m"
    weights_sha256 = "bench-real-plus-synthetic"
    dim = 768
    dtype = "float32"

    def __init__(self, cache_build: Path, sigma: float = 0.9):
        keys = json.loads((cache_build / "sentence_keys.json").read_text("utf-8"))
        self.real = np.load(cache_build / "sentence_vectors.npy").astype(np.float32)
        self.row = {k: i for i, k in enumerate(keys)}
        self.mu = self.real.mean(0)
        self.sigma = sigma
        self.seconds = 0.0
        self.n_real = self.n_synthetic = 0

    def vector(self, key: str) -> np.ndarray:
        i = self.row.get(key)
        if i is not None:
            self.n_real += 1
            return self.real[i]
        self.n_synthetic += 1
        rng = np.random.default_rng(int(key[:15], 16))
        idx = rng.integers(0, len(self.real), 9)
        g = (rng.standard_normal(8).astype(np.float32)[:, None] * (self.real[idx[1:]] - self.mu)).sum(0) / np.sqrt(8)
        v = self.real[idx[0]] + self.sigma * g
        return v / np.linalg.norm(v)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        t = time.perf_counter()
        out = np.stack([self.vector(index_mod._key(x)) for x in texts]) if texts else np.zeros((0, 768), np.float32)
        self.seconds += time.perf_counter() - t
        return out

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        raise RuntimeError("the bench uses cached query vectors")


def rss_mb() -> dict:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out


def child_load(index_dir: str) -> None:
    """In a fresh process: the real model, then the index; prints times and RSS as JSON."""
    from rag.models import load_embedder

    runtime.configure()
    t = time.perf_counter()
    emb = load_embedder(Settings())
    emb.embed_queries(["warm up"])
    model_s, after_model = time.perf_counter() - t, rss_mb()
    t = time.perf_counter()
    idx = Index.load(Path(index_dir))
    load_s = time.perf_counter() - t
    after = rss_mb()
    print(json.dumps({"model_s": model_s, "load_s": load_s, "rss_model_mb": after_model["VmRSS"],
                      "rss_mb": after["VmRSS"], "hwm_mb": after["VmHWM"], "passages": len(idx.passages)}))


def pick(qa_docs, news, n_passages: dict, size: int):
    """QA contexts plus news articles in shuffled order up to `size` passages; the next 100 articles."""
    total = sum(n_passages[d.id] for d in qa_docs)
    docs = list(qa_docs)
    i = 0
    while i < len(news) and total + n_passages[news[i].id] <= size:
        total += n_passages[news[i].id]
        docs.append(news[i])
        i += 1
    return docs, news[i:i + 100], news[i + 100:i + 200]


def pct(xs, p):
    return float(np.percentile(xs, p)) if xs else float("nan")


def dev_recall(index, qs, qvecs, settings, modes=("dense", "hybrid")) -> dict:
    out = {}
    for m in modes:
        r1, r5 = {s: [] for s in SETS}, {s: [] for s in SETS}
        for q, qv in zip(qs, qvecs, strict=True):
            r = rank_of([h.index for h in retrieve(index, q.question, qv, settings, mode=m, k=5)], index.passages,
                        q.doc_id, 5)
            r1[q.set].append(r == 1)
            r5[q.set].append(r is not None)
        out[m] = (float(np.mean([np.mean(v) for v in r1.values() if v])), float(np.mean([np.mean(v) for v in r5.values() if v])))
    return out


def exact_dense(index) -> dense_mod.DenseSearch:
    """Exact search over the same (float16-stored) vectors: the reference for recall."""
    flat = dense_mod.build("flat", index.sentence_vectors.astype(np.float32))
    return dense_mod.DenseSearch([flat], [np.ones(flat.ntotal, bool)], index.sentence_vectors)


def measure(size, docs, add, add2, emb, qs, qvecs, args, rows, ann_rows) -> Index:
    settings = Settings(project_root=args.work, index_dir=args.work / f"index-{size}", model=emb.model_id)
    shutil.rmtree(settings.index_dir, ignore_errors=True)
    emb.seconds = 0.0
    t = time.perf_counter()
    r = build_index(settings, emb, documents=docs)
    build_s = time.perf_counter() - t - emb.seconds
    embed_real_h = r.sentences / REAL_RATE / 3600
    idx = Index.load(settings.index_dir, settings, emb)
    m = idx.manifest
    disk = sum(meta["size"] for meta in index_files(settings.index_dir, m).values())
    # load time and RSS in a fresh process, with the real model
    child = subprocess.run([sys.executable, __file__, "--child-load", str(settings.index_dir)], capture_output=True,
                           text=True, check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                                       "HOME": str(Path.home())})
    ld = json.loads(child.stdout.strip().splitlines()[-1])
    # adding 100 documents: a delta segment, then the reload the app and `rag index` do
    emb.seconds = 0.0
    t = time.perf_counter()
    ra = build_index(settings, emb, documents=docs + add)
    idx2 = Index.load(settings.index_dir, settings, emb)  # shares the base segment with idx
    add_s = time.perf_counter() - t - emb.seconds
    assert ra.update == "delta", ra.update
    # merging: the deltas written into a new base (every vector reused)
    saved = build_mod.DELTA_SHARE, build_mod.DELTA_MIN
    build_mod.DELTA_SHARE, build_mod.DELTA_MIN = 0.0, 0
    emb.seconds = 0.0
    t = time.perf_counter()
    rm = build_index(settings, emb, documents=docs + add + add2)
    merge_s = time.perf_counter() - t - emb.seconds
    build_mod.DELTA_SHARE, build_mod.DELTA_MIN = saved
    assert rm.update == "full"
    del idx2
    # retrieval latency on the index as built (after the query embedding)
    rng = random.Random(1)
    sample = rng.sample(range(len(qs)), min(args.queries, len(qs)))
    lat_r, lat_a = [], []
    s_off = settings
    for i in sample:
        t = time.perf_counter()
        retrieve(idx, qs[i].question, qvecs[i], settings, k=settings.k)
        lat_r.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        answer(idx, emb, qs[i].question, s_off, embedded=(qvecs[i], None))
        lat_a.append((time.perf_counter() - t) * 1000)
    kinds = "+".join(seg["faiss"] for seg in m["segments"])
    recall = float("nan")
    if "ivf" in kinds or "hnsw" in kinds:
        exact = exact_dense(idx)
        rec = []
        for i in sample:
            a = set(idx.dense.search(qvecs[i], 10)[1][0].tolist())
            b = set(exact.search(qvecs[i], 10)[1][0].tolist())
            rec.append(len(a & b) / 10)
        recall = float(np.mean(rec))
        dq = rng.sample(range(len(qs)), min(args.dev_questions, len(qs)))
        ann = dev_recall(idx, [qs[i] for i in dq], qvecs[dq], settings)
        approx = idx.dense
        idx.dense = exact
        ex = dev_recall(idx, [qs[i] for i in dq], qvecs[dq], settings)
        idx.dense = approx
        ann_rows.append([size, kinds, len(dq), ex["dense"][0], ann["dense"][0], ex["dense"][1], ann["dense"][1],
                         ex["hybrid"][0], ann["hybrid"][0], ex["hybrid"][1], ann["hybrid"][1]])
    rows.append([size, r.documents, r.passages, r.sentences, kinds, f"{build_s:.1f}", f"{embed_real_h:.1f} h",
                 f"{add_s:.1f}", f"{ra.embedded_sentences} ({ra.embedded_sentences / REAL_RATE:.0f} s)",
                 f"{merge_s:.1f}", f"{disk / 2**20:.0f}", f"{ld['load_s']:.2f}",
                 f"{ld['rss_mb'] / 1024:.2f} ({(ld['rss_mb'] - ld['rss_model_mb']) / 1024:.2f})",
                 f"{pct(lat_r, 50):.1f} / {pct(lat_r, 95):.1f}", f"{pct(lat_a, 50):.1f} / {pct(lat_a, 95):.1f}",
                 "-" if recall != recall else f"{recall:.3f}"])
    print(table("so far", HEADER, rows), file=sys.stderr, flush=True)
    return idx


HEADER = ["passages (target)", "documents", "passages", "sentences", "FAISS", "build s", "real embedding",
          "add 100 docs s", "sentences embedded (real model)", "merge s", "disk MiB", "load s",
          "RSS GiB with model (index)", "retrieve p50/p95 ms", "answer p50/p95 ms", "ANN recall@10"]


def ann_table(idx: Index, qvecs: np.ndarray, args) -> None:
    """FAISS types on the largest index's vectors: recall@10 against exact search, latency, memory."""
    import faiss

    v = idx.sentence_vectors.astype(np.float32)
    rng = np.random.default_rng(1)
    qs = qvecs[rng.choice(len(qvecs), min(args.queries, len(qvecs)), replace=False)].astype(np.float32)
    flat = faiss.IndexFlatIP(v.shape[1])
    flat.add(v)
    gt = [set(flat.search(q[None], 10)[1][0].tolist()) for q in qs]
    rows = []

    def run(name, index, build_s, params=None, q_of=lambda q: q):
        lat, rec = [], []
        for q, g in zip(qs, gt, strict=True):
            t = time.perf_counter()
            ids = index.search(q_of(q)[None], 10, params=params)[1][0]
            lat.append((time.perf_counter() - t) * 1000)
            rec.append(len(g & set(ids.tolist())) / 10)
        rows.append([name, f"{build_s:.0f}", f"{len(faiss.serialize_index(index)) / 2**20:.0f}", float(np.mean(rec)),
                     f"{pct(lat, 50):.1f}", f"{pct(lat, 95):.1f}"])
        print(table("FAISS types so far", ANN_HEADER, rows), file=sys.stderr, flush=True)

    run("flat float32 (exact)", flat, 0)
    t = time.perf_counter()
    f16 = faiss.IndexScalarQuantizer(v.shape[1], faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    f16.add(v)
    run("flat float16", f16, time.perf_counter() - t)
    t = time.perf_counter()
    ivf = dense_mod.build("ivf", v)
    b = time.perf_counter() - t
    for p in (32, 64, 96, 128, 192, 256):
        run(f"IVF{ivf.nlist},SQ8 nprobe {p}", ivf, b, faiss.SearchParametersIVF(nprobe=p))
    m = v[:, :256] / np.linalg.norm(v[:, :256], axis=1, keepdims=True)
    t = time.perf_counter()
    mat = faiss.IndexFlatIP(256)
    mat.add(m)
    run("Matryoshka 256-d flat", mat, time.perf_counter() - t, q_of=lambda q: q[:256] / np.linalg.norm(q[:256]))
    if args.hnsw:
        t = time.perf_counter()
        h = dense_mod.build("hnsw", v)
        b = time.perf_counter() - t
        for ef in (64, 128, 256):
            run(f"HNSW32 efSearch {ef}", h, b, faiss.SearchParametersHNSW(efSearch=ef))
    print(table(f"FAISS types over the {len(v):,} sentence vectors of the largest index, {len(qs)} dev questions "
                "(real query vectors), one thread", ANN_HEADER, rows))


ANN_HEADER = ["FAISS index", "build s", "MiB", "recall@10 vs exact", "search p50 ms", "p95 ms"]


def pool_costs(args, emb, qs, qvecs) -> None:
    """Dev-set R@1/R@5 on eval/bench_retrieval.py's pool (all real vectors): float32 768-d
    exact (the format-2 index) vs float16 storage (format 3) vs Matryoshka 256-d."""
    qa_docs, _ = load_sets(args.data)
    docs = qa_docs + news_distractors(args.data, 1000)
    settings = Settings(project_root=args.work, index_dir=args.work / "index-pool", model=emb.model_id)
    shutil.rmtree(settings.index_dir, ignore_errors=True)
    emb.n_synthetic = 0
    build_index(settings, emb, documents=docs)
    assert emb.n_synthetic == 0, "the pool's sentences should all be in the bench cache"
    idx = Index.load(settings.index_dir, settings, emb)
    res = {"float16 storage (format 3)": dev_recall(idx, qs, qvecs, settings)}
    f32 = np.stack([emb.real[emb.row[k]] for k in idx.sent_keys])
    v16 = idx.sentence_vectors
    idx.sentence_vectors = f32
    idx.dense = dense_mod.DenseSearch([dense_mod.build("flat", f32)], [np.ones(len(f32), bool)], f32)
    res["float32 768-d exact (format 2)"] = dev_recall(idx, qs, qvecs, settings)
    m = f32[:, :256] / np.linalg.norm(f32[:, :256], axis=1, keepdims=True)
    idx.sentence_vectors = m
    idx.dense = dense_mod.DenseSearch([dense_mod.build("flat", m)], [np.ones(len(m), bool)], m)
    q256 = qvecs[:, :256] / np.linalg.norm(qvecs[:, :256], axis=1, keepdims=True)
    res["Matryoshka 256-d exact"] = dev_recall(idx, qs, q256, settings)
    del v16
    rows = [[name, r["dense"][0], r["dense"][1], r["hybrid"][0], r["hybrid"][1]] for name, r in res.items()]
    print(table(f"Dev-set retrieval on the bench pool ({len(idx.passages)} passages, {len(qs)} answerable questions, "
                "macro over the four sets)", ["vectors", "dense R@1", "dense R@5", "hybrid R@1", "hybrid R@5"], rows))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "rag" / "bench-scale")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "rag" / "bench")
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 30_000, 100_000])
    ap.add_argument("--queries", type=int, default=300, help="questions timed at each size")
    ap.add_argument("--dev-questions", type=int, default=1000, help="questions for R@1/R@5 ANN vs exact")
    ap.add_argument("--ann", action="store_true", help="also compare FAISS types on the largest index")
    ap.add_argument("--hnsw", action="store_true", help="with --ann, also HNSW (slow to build)")
    ap.add_argument("--pool", action="store_true", help="also R@1/R@5 of float16 and Matryoshka-256 on the bench pool")
    ap.add_argument("--child-load", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_load:
        child_load(args.child_load)
        return 0
    runtime.configure()
    args.work.mkdir(parents=True, exist_ok=True)
    print(runtime.cpu_flags_line())
    emb = BenchEmbedder((args.cache / "index-embeddinggemma-300m" / "current").resolve())
    qa_docs, qs = load_sets(args.data)
    qs_ans = [q for q in qs if not q.impossible]
    z = np.load(args.cache / "qvecs-embeddinggemma-300m.npz")
    qcache = dict(zip(z["keys"].tolist(), z["vecs"], strict=True))
    qvecs = np.stack([qcache[hashlib.sha1(q.question.encode()).hexdigest()] for q in qs_ans]).astype(np.float32)
    t = time.perf_counter()
    news = [d for rel in NEWS for d in load_distractors(args.data / rel)]
    random.Random(0).shuffle(news)
    n_passages = {d.id: len(chunk(d)) for d in qa_docs + news}
    print(f"{len(qa_docs)} QA contexts, {len(news)} news articles ({sum(n_passages.values()):,} passages) "
          f"read in {time.perf_counter() - t:.0f} s; {len(qs_ans)} answerable questions", file=sys.stderr)
    rows, ann_rows = [], []
    idx = None
    for size in args.sizes:
        docs, add, add2 = pick(qa_docs, news, n_passages, size)
        del idx
        idx = measure(size, docs, add, add2, emb, qs_ans, qvecs, args, rows, ann_rows)
    print(f"\n{runtime.cpu_flags_line()}")
    print(table("Index scale (times exclude embedding; vectors: real EmbeddingGemma-300m for the "
                f"{len(emb.row):,} sentences of the bench cache, synthetic for the rest — see the docstring; "
                f"{emb.n_real:,} real / {emb.n_synthetic:,} synthetic vectors served)", HEADER, rows))
    if ann_rows:
        print(table("Dev-set R@1 / R@5 (macro of the four sets, answerable questions sampled) with the ANN index "
                    "vs exact search over the same vectors", ["passages", "FAISS", "questions", "dense R@1 exact",
                                                             "dense R@1 ANN", "dense R@5 exact", "dense R@5 ANN",
                                                             "hybrid R@1 exact", "hybrid R@1 ANN", "hybrid R@5 exact",
                                                             "hybrid R@5 ANN"], ann_rows))
    if args.ann and idx is not None:
        ann_table(idx, qvecs, args)
    if args.pool:
        pool_costs(args, emb, qs_ans, qvecs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
