"""Benchmark: the same index in FAISS (the index folder) and in Milvus Lite, side by side.

Both stores are built from the same documents with the same sentence vectors (taken from
existing indexes, nothing is re-embedded) and asked the same questions with the same
query vectors; prints R@1/R@5 per retrieval mode, how often the two give the same answer
(same abstention and the same first cited sentence, offsets included), and warm latency
of retrieval and of answering (query embedding excluded: it is the same for both).

    python eval/bench_store.py [--seed-index ../main/index] [--pool ~/.cache/rag/bench/index-embeddinggemma-300m]
        [--data ../shared/data] [--limit N]

Corpora: the seed articles (corpus/, gold eval/gold/seed_qa.jsonl; vectors from an index of
them, e.g. the project's index/) and the dev-set pool of eval/bench_retrieval.py (its cached
index in ~/.cache/rag/bench; questions from ../shared/data, query vectors from its cache).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rag import runtime
from rag.answer import answer
from rag.build import build_index
from rag.config import Settings
from rag.embedding import Embedder
from rag.evaluation import load_gold
from rag.evaluation.bench import load_sets, table
from rag.index import Index
from rag.retrieval import retrieve

ROOT = Path(__file__).resolve().parent.parent

MODES = ("lexical", "dense", "hybrid")


class CachedEmbedder(Embedder):
    """The vectors of an existing index, looked up by the exact sentence text; `fallback` (or an
    error) for a text it does not hold. Stands in for the model when building the same corpus
    again, so that both stores get the very same vectors."""

    def __init__(self, index: Index, fallback: Embedder | None = None):
        m = index.manifest["model"]
        self.model_id, self.weights_sha256, self.dim, self.dtype = m["id"], m["sha256"], m["dim"], m.get("dtype", "")
        self.vectors = {index.sentence_text(j): np.asarray(index.sentence_vectors[j]) for j in range(len(index.sent_keys))}
        self.fallback = fallback
        self.missed = 0

    def embed_documents(self, texts):
        out = []
        for t in texts:
            v = self.vectors.get(t)
            if v is None:
                if self.fallback is None:
                    raise KeyError(f"no cached vector for {t[:60]!r}")
                self.missed += 1
                v = self.fallback.embed_documents([t])[0]
            out.append(v)
        return np.stack(out).astype(np.float32)

    def embed_queries(self, texts):
        if self.fallback is None:
            raise KeyError("no query embedding without the model")
        return self.fallback.embed_queries(texts)


def query_vectors(cache_f: Path, questions: list[str], embedder: Embedder | None) -> np.ndarray:
    """Query vectors from the npz cache eval/bench_retrieval.py keeps (sha1 of the question),
    embedding (and adding) only the missing ones."""
    cache: dict[str, np.ndarray] = {}
    if cache_f.exists():
        z = np.load(cache_f)
        cache = dict(zip(z["keys"].tolist(), z["vecs"], strict=True))
    keys = [hashlib.sha1(q.encode()).hexdigest() for q in questions]
    todo = [(k, q) for k, q in dict(zip(keys, questions, strict=True)).items() if k not in cache]
    if todo:
        if embedder is None:
            raise SystemExit(f"{len(todo)} questions have no cached vector in {cache_f}; run eval/bench_retrieval.py first")
        for (k, _), v in zip(todo, embedder.embed_queries([q for _, q in todo]), strict=True):
            cache[k] = v
        np.savez(cache_f, keys=np.array(list(cache)), vecs=np.stack(list(cache.values())))
    return np.stack([cache[k] for k in keys]).astype(np.float32)


def build_both(work: Path, documents, embedder: Embedder, model: str, updated: bool = False) -> dict[str, Index]:
    """The same documents built for FAISS and for Milvus Lite (a fresh file in work/); with `updated`,
    also Milvus Lite built in two syncs (without every tenth document, then with all: an update)."""
    out = {}
    builds = [("FAISS", "faiss", 1), ("Milvus Lite", f"milvus://{work}/milvus.db", 1)]
    builds += [("Milvus Lite, updated", f"milvus://{work}/updated.db", 2)] if updated else []
    for name, store, steps in builds:
        settings = Settings(project_root=work, index_dir=work / f"index-{store.rsplit('/', 1)[-1]}", model=model,
                            store=store)
        if steps == 2:
            build_index(settings, embedder, documents=[d for i, d in enumerate(documents) if i % 10 != 9])
        t = time.perf_counter()
        report = build_index(settings, embedder, documents=documents)
        print(f"{name}: built {report.documents} documents, {report.passages} passages, {report.sentences} sentences "
              f"in {time.perf_counter() - t:.1f} s ({report.embedded_sentences} embedded)", file=sys.stderr)
        out[name] = Index.load(settings.index_dir, settings, verify=False)
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[int(q * (len(xs) - 1))] if xs else float("nan")


def compare(label: str, indexes: dict[str, Index], questions: list[tuple[str, tuple[str, ...]]], qvecs: np.ndarray,
            settings: Settings) -> list[list]:
    """Rows: per store, R@1/R@5 per mode (answerable questions), same answer as FAISS, latencies."""
    rows, firsts = [], {}
    for name, index in indexes.items():
        recall = {m: ([], []) for m in MODES}
        t_ret, t_ans, first = [], [], []
        for (q, gold), qv in zip(questions, qvecs, strict=True):
            for m in MODES:
                t = time.perf_counter()
                hits = retrieve(index, q, qv, settings, mode=m, k=5)
                if m == "hybrid":
                    t_ret.append((time.perf_counter() - t) * 1000)
                if gold:
                    docs = [h.passage.doc_id for h in hits]
                    recall[m][0].append(bool(docs[:1]) and docs[0] in gold)
                    recall[m][1].append(any(d in gold for d in docs))
            t = time.perf_counter()
            a = answer(index, None, q, settings, embedded=(qv, None))
            t_ans.append((time.perf_counter() - t) * 1000)
            c = a.citations[0] if a.citations else None
            first.append(("abstained",) if a.abstained else (c.doc_id, c.start, c.end) if c else None)
        firsts[name] = first
        same = float(np.mean([x == y for x, y in zip(first, firsts["FAISS"], strict=True)]))
        rows.append([label, name] + [float(np.mean(recall[m][i])) for m in MODES for i in (0, 1)]
                    + [same, statistics.median(t_ret), pct(t_ret, 0.95), statistics.median(t_ans), pct(t_ans, 0.95)])
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed-index", type=Path, default=ROOT / "index",
                    help="an index of corpus/ built with the model (its vectors are reused)")
    ap.add_argument("--pool", type=Path, default=Path.home() / ".cache" / "rag" / "bench" / "index-embeddinggemma-300m",
                    help="eval/bench_retrieval.py's cached index of the dev-set pool")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--limit", type=int, default=0, help="ask only this many pool questions (0 = all)")
    ap.add_argument("--skip-seed", action="store_true")
    ap.add_argument("--skip-pool", action="store_true")
    args = ap.parse_args()
    runtime.configure()
    base = Settings()
    rows = []
    work = Path(tempfile.mkdtemp(prefix="bench-store-"))
    try:
        if not args.skip_seed:
            from rag.corpus import load_project_corpus
            from rag.models import load_embedder

            seed_settings = Settings(project_root=ROOT)
            src = Index.load(args.seed_index, seed_settings, verify=False)
            model = load_embedder(seed_settings)
            emb = CachedEmbedder(src, fallback=model)
            docs = load_project_corpus(seed_settings).documents
            items = load_gold(ROOT / "eval" / "gold" / "seed_qa.jsonl", ROOT)
            qv = query_vectors(args.pool.parent / f"qvecs-{emb.model_id}.npz", [i.question for i in items], model)
            indexes = build_both(work / "seed", docs, emb, emb.model_id)
            if emb.missed:
                print(f"seed: {emb.missed} sentences were not in {args.seed_index} and were embedded", file=sys.stderr)
            rows += compare(f"seed ({len(items)} q)", indexes,
                            [(i.question, tuple(i.doc_ids) if i.answerable else ()) for i in items], qv, base)
        if not args.skip_pool:
            src = Index.load(args.pool, verify=False)
            emb = CachedEmbedder(src)
            docs = list(src.documents.values())
            _, qs = load_sets(args.data)
            qs = [q for q in qs if not q.impossible and q.doc_id in src.documents]
            if args.limit and args.limit < len(qs):  # spread evenly over the pool (all four sets)
                qs = [qs[i] for i in np.linspace(0, len(qs) - 1, args.limit).round().astype(int)]
            qv = query_vectors(args.pool.parent / f"qvecs-{emb.model_id}.npz", [q.question for q in qs], None)
            indexes = build_both(work / "pool", docs, emb, emb.model_id, updated=True)
            rows += compare(f"dev pool ({len(qs)} q, {len(docs)} docs)", indexes,
                            [(q.question, (q.doc_id,)) for q in qs], qv, base)
    finally:
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_all()  # the in-process Lite servers, before their files go
        shutil.rmtree(work, ignore_errors=True)
    print(runtime.cpu_flags_line())
    print(table("FAISS vs Milvus Lite: the same vectors and questions (recall over answerable questions; "
                "answers: same abstention and first cited sentence as FAISS; ms warm, without query embedding)",
                ["corpus", "store"] + [f"{m} R@{k}" for m in MODES for k in (1, 5)]
                + ["same answer", "retrieve p50", "p95", "answer p50", "p95"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
