"""Benchmark: retrieval (lexical / dense / hybrid), answer containment, abstention
calibration, indexing speed and ask latency on the shared dev sets.

One mixed-language corpus is pooled from the contexts of xquad_ar, mlqa_ar_dev,
persianqa and parsinlu_rc plus news distractors (fars_news, saudinewsnet); every
question is asked against the whole pool. Prints tables; writes nothing in the repo
except, with --write-calibration, rag/calibration.json.

    python eval/bench_retrieval.py [--data ../shared/data] [--distractors 1000]
        [--sweep] [--write-calibration] [--speed N]

The index (and query vectors) are cached in --work (default ~/.cache/rag/bench), so a
re-run embeds nothing new.

The pool comes from rag.evaluation's loaders, as for `rag eval`: load_squad for the
contexts and questions, load_distractors for the news, each article cut to its first
passage (of at least 200 characters; the title is not in the text). Containment is
rag.metrics.containment, the same as `rag eval`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.answer import DEFAULT_WEIGHTS, FEATURES, retrieve_for_answer, select, sentence_features  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.corpus import Document  # noqa: E402
from rag.embedding import load_embedder  # noqa: E402
from rag.engine import Engine  # noqa: E402
from rag.evaluation import load_distractors, load_squad  # noqa: E402
from rag.fitting import pairwise_weights  # noqa: E402
from rag.index import Index, build_index  # noqa: E402
from rag.metrics import best_threshold, containment  # noqa: E402
from rag.progress import TerminalProgress  # noqa: E402
from rag.retrieval import retrieve  # noqa: E402

SETS = {
    "xquad_ar": "qa/xquad_ar/xquad.ar.json",
    "mlqa_ar": "qa/mlqa_ar_dev/MLQA-dev-context-ar-question-ar.json",
    "persianqa": "qa/persianqa/pqa_test.json",
    "parsinlu": "qa/parsinlu_rc/train.json",
}
NEWS = ("corpora/fars_news", "corpora/saudinewsnet")  # Persian, Arabic
MIN_DISTRACTOR_CHARS = 201


@dataclass(frozen=True)
class Q:
    set: str
    question: str
    answers: tuple[str, ...]
    doc_id: str
    impossible: bool
    article: int = -1  # its article's number in the set's file (data[N])


def load_sets(data: Path, max_contexts: int = 0, seed: int = 0) -> tuple[list[Document], list[Q]]:
    """Contexts of the four sets as documents, and every question; with max_contexts, a
    deterministic random sample of that many contexts per set (and their questions)."""
    docs: dict[str, Document] = {}
    qs: list[Q] = []
    for name, rel in SETS.items():
        set_docs, items = load_squad(data / rel, limit=max_contexts or None, seed=seed)
        for doc in set_docs:
            docs.setdefault(doc.id, doc)
        qs += [Q(name, i.question, i.answers, i.doc_ids[0] if i.doc_ids else "", not i.answerable,
                 int(re.search(r" data\[(\d+)\]", i.origin).group(1))) for i in items]
    return list(docs.values()), qs


def news_distractors(data: Path, n: int, seed: int = 0) -> list[Document]:
    """n passage-sized news distractors per language: the first passage of random articles."""
    return [d for rel in NEWS
            for d in load_distractors(data / rel, limit=n, seed=seed, lead=True, min_chars=MIN_DISTRACTOR_CHARS)]


def contains(answer: str, golds: tuple[str, ...]) -> bool:
    """A gold answer occurs in the answer (normalised, whole words: rag.metrics, as `rag eval`)."""
    return containment(answer, golds) > 0


def rank_of(order: list[int], passages, doc_id: str, limit: int) -> int | None:
    for r, i in enumerate(order[:limit], start=1):
        if passages[i].doc_id == doc_id:
            return r
    return None


def query_vectors(work: Path, embedder, questions: list[str]) -> np.ndarray:
    cache_f = work / f"qvecs-{embedder.model_id}.npz"
    cache: dict[str, np.ndarray] = {}
    if cache_f.exists():
        z = np.load(cache_f)
        cache = dict(zip(z["keys"].tolist(), z["vecs"], strict=True))
    keys = [hashlib.sha1(q.encode()).hexdigest() for q in questions]
    todo = sorted({k: q for k, q in zip(keys, questions, strict=True) if k not in cache}.items())
    for i in tqdm(range(0, len(todo), 32), desc="embedding questions", disable=not todo):
        batch = todo[i:i + 32]
        for (k, _), v in zip(batch, embedder.embed_queries([q for _, q in batch]), strict=True):
            cache[k] = v
    if todo:
        np.savez(cache_f, keys=np.array(list(cache)), vecs=np.stack(list(cache.values())))
    return np.stack([cache[k] for k in keys])


def ranking(index: Index, q: str, qv: np.ndarray, settings: Settings, mode: str, k: int = 20) -> list[int]:
    return [h.index for h in retrieve(index, q, qv, settings, mode=mode, k=k)]


def table(title: str, header: list[str], rows: list[list]) -> str:
    cells = [header] + [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    out = [f"\n{title}", line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(out + [line(r) for r in cells[1:]])


def retrieval_metrics(index, qs, qvecs, settings, modes) -> dict:
    res: dict = {m: {s: {"r1": [], "r5": [], "r20": [], "mrr": []} for s in SETS} for m in modes}
    for m in modes:
        for q, qv in zip(qs, qvecs, strict=True):
            r = rank_of(ranking(index, q.question, qv, settings, m), index.passages, q.doc_id, 20)
            d = res[m][q.set]
            d["r1"].append(r is not None and r <= 1)
            d["r5"].append(r is not None and r <= 5)
            d["r20"].append(r is not None)
            d["mrr"].append(1.0 / r if r is not None and r <= 10 else 0.0)
    return {m: {s: {k: float(np.mean(v)) for k, v in d.items()} for s, d in sets.items()} for m, sets in res.items()}


@dataclass
class Candidates:
    """Sentence candidates of one question: features, labels (contains a gold answer)."""
    q: Q
    feats: np.ndarray
    labels: np.ndarray
    refs: list


def collect(index, qs, qvecs, settings) -> list[Candidates]:
    out = []
    for q, qv in tqdm(list(zip(qs, qvecs, strict=True)), desc="sentence candidates", leave=False):
        hits = retrieve_for_answer(index, q.question, qv, settings)
        feats, refs = sentence_features(index, hits, qv, q.question, settings.answer_passages)
        labels = np.array([not q.impossible and contains(index.sentence_text(j), q.answers) for j, _ in refs], bool)
        out.append(Candidates(q, feats, labels, refs))
    return out


def answer_metrics(index, cands: list[Candidates], weights: dict, margin: float, max_sentences: int = 3):
    """Containment of the first sentence / whole answer per set, and each question's evidence."""
    w = np.array([weights.get(f, 0.0) for f in FEATURES], np.float32)
    sel_settings = Settings(sentence_margin=margin, max_sentences=max_sentences)
    first: dict[str, list] = {s: [] for s in SETS}
    whole: dict[str, list] = {s: [] for s in SETS}
    oracle: dict[str, list] = {s: [] for s in SETS}
    evidence = []
    for c in cands:
        if not len(c.refs):
            evidence.append(-1e9)
            if not c.q.impossible:
                first[c.q.set].append(False)
                whole[c.q.set].append(False)
                oracle[c.q.set].append(False)
            continue
        scores = c.feats @ w + weights.get("bias", 0.0)
        order = np.argsort(-scores, kind="stable")
        evidence.append(float(scores[order[0]]))
        if c.q.impossible:
            continue
        scored = [(float(scores[i]), c.refs[i][0], c.refs[i][1]) for i in order]
        chosen_j = {j for _, j, _ in select(scored, index, sel_settings)}
        chosen = [i for i in order if c.refs[i][0] in chosen_j]
        first[c.q.set].append(bool(c.labels[order[0]]))
        whole[c.q.set].append(bool(c.labels[chosen].any()))
        oracle[c.q.set].append(bool(c.labels.any()))
    mean = lambda d: {s: float(np.mean(v)) if v else float("nan") for s, v in d.items()}  # noqa: E731
    return {"first": mean(first), "whole": mean(whole), "oracle": mean(oracle)}, evidence


def fit_weights(cands: list[Candidates]) -> dict:
    """Pairwise logistic regression (RankNet-style) within each question: a sentence holding
    a gold answer should outscore one that does not. Learns ranking, not calibration."""
    answerable = [c for c in cands if not c.q.impossible]
    w = pairwise_weights([c.feats for c in answerable], [c.labels for c in answerable])
    return {"bias": 0.0} | {f: float(v) for f, v in zip(FEATURES, w, strict=True)}


def write_tuning(model_id: str, values: dict) -> Path:
    """Store fitted values for a model in rag/calibration.json, dated, keeping the model's other
    entries (the scorer's, the answerability model's and the reader's are fitted by three scripts)."""
    path = ROOT / "rag" / "calibration.json"
    data = json.loads(path.read_text("utf-8"))
    data[model_id] = data.get(model_id, {}) | values | {"calibrated_at": time.strftime("%Y-%m-%d")}
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {', '.join(values)} for {model_id} to {path}", file=sys.stderr)
    return path


def calibrate(evidence: list[float], impossible: list[bool], max_wrong: float = 1.0) -> dict:
    """rag.metrics.best_threshold (abstain when evidence < threshold, at most `max_wrong`
    wrong abstentions), as a row for the table and rag/calibration.json."""
    cal = best_threshold(evidence, [not x for x in impossible], max_wrong)
    return cal.to_dict() | {"threshold": round(cal.threshold, 4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "rag" / "bench")
    ap.add_argument("--distractors", type=int, default=1000, help="news passages per language")
    ap.add_argument("--max-contexts", type=int, default=0, help="sample this many contexts per set (0 = all)")
    ap.add_argument("--model", default="embeddinggemma-300m")
    ap.add_argument("--sweep", action="store_true", help="also sweep fusion weights and answer settings")
    ap.add_argument("--latency", type=int, default=100, help="questions timed end to end through Engine.ask")
    ap.add_argument("--write-calibration", action="store_true", help="store the PersianQA-calibrated threshold in rag/calibration.json")
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

    cands = collect(index, qs, qvecs, settings)
    rows = []
    base, _ = answer_metrics(index, cands, DEFAULT_WEIGHTS, 0.08)
    rows += [["cosine+0.3·overlap (untrained)", k] + [base[k][x] for x in SETS] + [float(np.mean(list(base[k].values())))]
             for k in ("first", "whole", "oracle")]
    # leave-one-set-out: weights fitted on the other three sets, scored on the held-out one
    cv = {"first": {}, "whole": {}}
    for held in SETS:
        w = fit_weights([c for c in cands if c.q.set != held])
        m, _ = answer_metrics(index, [c for c in cands if c.q.set == held], w, args.margin)
        cv["first"][held], cv["whole"][held] = m["first"][held], m["whole"][held]
    rows += [["fitted, leave-one-set-out", k] + [cv[k][x] for x in SETS] + [float(np.mean(list(cv[k].values())))]
             for k in ("first", "whole")]
    weights = fit_weights(cands)
    fitted, evidence = answer_metrics(index, cands, weights, args.margin)
    rows += [["fitted on all four sets", k] + [fitted[k][x] for x in SETS] + [float(np.mean(list(fitted[k].values())))]
             for k in ("first", "whole")]
    print(table(f"Answer containment (hybrid; sentences of the top {settings.answer_passages} passages + the closest by cosine; ≤{settings.max_sentences} sentences, margin {args.margin})",
                ["scorer", "answer"] + list(SETS) + ["macro"], rows))
    print("sentence weights: " + json.dumps({k: round(v, 3) for k, v in weights.items()}))

    pq = [i for i, q in enumerate(qs) if q.set == "persianqa"]
    free = calibrate([evidence[i] for i in pq], [qs[i].impossible for i in pq])
    cal = calibrate([evidence[i] for i in pq], [qs[i].impossible for i in pq], max_wrong=args.max_wrong)
    print(table(f"Abstention on PersianQA ({sum(qs[i].impossible for i in pq)} unanswerable of {len(pq)})",
                ["criterion"] + list(cal), [["max F1"] + list(free.values()),
                                            [f"max F1, wrong abstentions ≤ {args.max_wrong:.0%} (shipped)"] + list(cal.values())]))
    if args.write_calibration:
        write_tuning(args.model, cal | {
            "sentence_weights": weights, "sentence_margin": args.margin,
            "source": "eval/bench_retrieval.py: weights fitted on xquad_ar, mlqa_ar_dev, persianqa, parsinlu_rc; "
                      "threshold maximises abstention F1 on persianqa (930 questions, 279 unanswerable)"})

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
