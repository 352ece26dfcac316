"""Helpers the scripts in eval/ share: the pooled dev sets, their question variants and
candidates, cached query vectors, tables, and writing fitted values.

The pool: the contexts of xquad_ar, mlqa_ar_dev, persianqa and parsinlu_rc plus news
distractors (fars_news, saudinewsnet), one index cached in --work (default
~/.cache/rag/bench), built by rag.evaluation's loaders as for `rag eval`. Every question
is asked against the whole pool. The data sets are read from ../shared/data (--data).

Nothing here is used when answering; eval/README.md says which script uses what.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rag import tuning
from rag.answer import retrieve_for_answer, select
from rag.build import build_index
from rag.config import Settings
from rag.corpus import Document, make_document
from rag.evaluation.distractors import load_distractors
from rag.evaluation.gold import load_squad
from rag.fitting import pairwise_weights
from rag.index import Index
from rag.metrics import best_threshold, containment
from rag.models import load_embedder
from rag.retrieval import retrieve
from rag.scorer import DEFAULT_WEIGHTS, FEATURES, sentence_features
from rag.text import language_pair, sentences

ROOT = Path(__file__).resolve().parent.parent.parent  # the project (the data sets are beside it: ../shared/data)

# ---------------------------------------------------------------- the pool (four dev sets + news)
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
    sel_settings = Settings(max_sentences=max_sentences)
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
        chosen_j = {j for _, j, _ in select(scored, index, sel_settings, margin=margin)}
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
    """Store fitted values for a model in rag/calibration.json (rag.tuning.write, one key at a
    time: each value has one writer, the script that fits it), for the model's weights on disk."""
    from rag.models import model_path, weights_hash

    sha = weights_hash(model_path(model_id, Settings().models_dir))
    for key, value in values.items():
        path = tuning.write(model_id, key, value, sha)
    print(f"wrote {', '.join(values)} for {model_id} to {path}", file=sys.stderr)
    return path


def calibrate(evidence: list[float], impossible: list[bool], max_wrong: float = 1.0) -> dict:
    """rag.metrics.best_threshold (abstain when evidence < threshold, at most `max_wrong`
    wrong abstentions), as a row for the table and rag/calibration.json."""
    cal = best_threshold(evidence, [not x for x in impossible], max_wrong)
    return cal.to_dict() | {"threshold": round(cal.threshold, 4)}


def scorer_tables(index, qs: list[Q], qvecs: np.ndarray, settings: Settings, margin: float,
                  max_wrong: float) -> tuple[list[Candidates], dict, dict]:
    """Print answer containment (the untrained scorer, the fitted one leave one set out and
    on all four sets) and abstention on PersianQA; return the candidates, the sentence
    weights fitted on all four sets and the abstention threshold chosen on PersianQA
    (eval/bench_retrieval.py prints these tables, eval/fit_scorer.py writes the values)."""
    cands = collect(index, qs, qvecs, settings)
    rows = []
    base, _ = answer_metrics(index, cands, DEFAULT_WEIGHTS, 0.08)
    rows += [["cosine+0.3·overlap (untrained)", k] + [base[k][x] for x in SETS] + [float(np.mean(list(base[k].values())))]
             for k in ("first", "whole", "oracle")]
    # leave-one-set-out: weights fitted on the other three sets, scored on the held-out one
    cv = {"first": {}, "whole": {}}
    for held in SETS:
        w = fit_weights([c for c in cands if c.q.set != held])
        m, _ = answer_metrics(index, [c for c in cands if c.q.set == held], w, margin)
        cv["first"][held], cv["whole"][held] = m["first"][held], m["whole"][held]
    rows += [["fitted, leave-one-set-out", k] + [cv[k][x] for x in SETS] + [float(np.mean(list(cv[k].values())))]
             for k in ("first", "whole")]
    weights = fit_weights(cands)
    fitted, evidence = answer_metrics(index, cands, weights, margin)
    rows += [["fitted on all four sets", k] + [fitted[k][x] for x in SETS] + [float(np.mean(list(fitted[k].values())))]
             for k in ("first", "whole")]
    print(table(f"Answer containment (hybrid; sentences of the top {settings.answer_passages} passages + the closest by cosine; ≤{settings.max_sentences} sentences, margin {margin})",
                ["scorer", "answer"] + list(SETS) + ["macro"], rows))
    print("sentence weights: " + json.dumps({k: round(v, 3) for k, v in weights.items()}))

    pq = [i for i, q in enumerate(qs) if q.set == "persianqa"]
    free = calibrate([evidence[i] for i in pq], [qs[i].impossible for i in pq])
    cal = calibrate([evidence[i] for i in pq], [qs[i].impossible for i in pq], max_wrong=max_wrong)
    print(table(f"Abstention on PersianQA ({sum(qs[i].impossible for i in pq)} unanswerable of {len(pq)})",
                ["criterion"] + list(cal), [["max F1"] + list(free.values()),
                                            [f"max F1, wrong abstentions ≤ {max_wrong:.0%} (shipped)"] + list(cal.values())]))
    return cands, weights, cal

# ---------------------------------------------------------------- question variants (in and out of corpus)
EN_FILE = "qa/xquad_ar/xquad.en.json"
REPORTED = ["xquad_ar", "mlqa_ar", "persianqa", "parsinlu", "xquad_en"]  # the sets of every table
SET_LANG = {"xquad_ar": "ar", "mlqa_ar": "ar", "persianqa": "fa", "parsinlu": "fa", "xquad_en": "en"}


@dataclass
class Item:
    """One question asked one way (in corpus or out of corpus), with its candidates."""

    set: str
    group: str  # the fold it belongs to (xquad_en: by article half)
    question: str
    lang: str
    answers: tuple[str, ...]
    answerable: bool  # the corpus as searched holds the answer
    in_corpus: bool
    feats: np.ndarray  # sentence candidates × FEATURES
    labels: np.ndarray  # candidate holds a gold answer
    refs: list  # (sentence index, hit)
    hits: list
    qv: np.ndarray
    near: bool = False  # its own paragraph removed, the rest of its article kept (--near)
    article: int = -1  # its article's number in its set's file (data[N]; xquad_en: -1)


def article_groups(data: Path) -> tuple[dict[str, tuple[str, int]], list[tuple[str, str, tuple[str, ...], str]]]:
    """doc id → (set, article number) for every context, and the xquad.en questions as
    (question, Arabic gold doc id, Arabic answers, article key)."""
    groups = {}
    for name, rel in SETS.items():
        d = json.loads((data / rel).read_text("utf-8"))
        for a, art in enumerate(d["data"]):
            for para in art["paragraphs"]:
                doc = make_document(para["context"], "x")
                if doc is not None:
                    groups[doc.id] = (name, a)
    ar = json.loads((data / SETS["xquad_ar"]).read_text("utf-8"))
    en = json.loads((data / EN_FILE).read_text("utf-8"))
    english = []
    for a, (art_ar, art_en) in enumerate(zip(ar["data"], en["data"], strict=True)):
        for p_ar, p_en in zip(art_ar["paragraphs"], art_en["paragraphs"], strict=True):
            doc = make_document(p_ar["context"], "x")
            ar_answers = {qa["id"]: tuple(x["text"] for x in qa["answers"]) for qa in p_ar["qas"]}
            for qa in p_en["qas"]:
                if qa["id"] in ar_answers and doc is not None:
                    english.append((qa["question"], doc.id, ar_answers[qa["id"]], f"xquad_en{a % 2}"))
    return groups, english


def make_items(index, embedder, work: Path, data: Path, settings: Settings, near: bool = False) -> list[Item]:
    docs_groups, english = article_groups(data)
    _, qs = load_sets(data)
    questions = [(q.set, q.set, q.question, q.answers, q.doc_id, not q.impossible, q.article) for q in qs]
    questions += [("xquad_en", grp, q, ans, doc, True, -1) for q, doc, ans, grp in english]
    qvecs = query_vectors(work, embedder, [q[2] for q in questions])
    by_article = defaultdict(set)
    for doc_id, key in docs_groups.items():
        by_article[key].add(doc_id)
    items = []
    for (name, group, question, answers, doc_id, answerable, article), qv in tqdm(
            list(zip(questions, qvecs, strict=True)), desc="questions", file=sys.stderr):
        lang = SET_LANG[name]
        hits_all = retrieve_for_answer(index, question, qv, settings, k=40)
        variants = [(True, False, hits_all[:10])]
        if answerable:  # the same question with its whole article out of the corpus
            gone = by_article.get(docs_groups.get(doc_id), {doc_id})
            variants.append((False, False, [h for h in hits_all if h.passage.doc_id not in gone][:10]))
            if near and len(gone) > 1:  # … and with only its own paragraph out: the topic stays, the answer goes
                variants.append((False, True, [h for h in hits_all if h.passage.doc_id != doc_id][:10]))
        for in_corpus, is_near, hits in variants:
            feats, refs = sentence_features(index, hits, qv, question, settings.answer_passages)
            holds = np.array([contains(index.sentence_text(j), answers) for j, _ in refs], bool)
            if is_near and holds.any():  # another paragraph also holds the answer: not a clean near-miss
                continue
            items.append(Item(name, group, question, lang, answers, answerable and in_corpus, in_corpus,
                              feats, holds & (in_corpus and answerable), refs, hits, qv, is_near, article))
    return items


def scored_list(item: Item, weights: dict) -> list:
    w = np.array([weights.get(f, 0.0) for f in FEATURES], np.float32)
    if not item.refs:
        return []
    scores = item.feats @ w + weights.get("bias", 0.0)
    order = np.argsort(-scores, kind="stable")
    return [(float(scores[i]), item.refs[i][0], item.refs[i][1]) for i in order]


def pair_of(index, item: Item, scored: list) -> str:
    """The question's language > the language of its best candidate's document."""
    doc_lang = index.documents[scored[0][2].passage.doc_id].lang if scored else item.lang
    return language_pair(item.lang, doc_lang)


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a positive scores above a negative (ties count half)."""
    pos, neg = scores[positive], scores[~positive]
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg)))


def pool_parser(doc: str, fit: bool = False) -> argparse.ArgumentParser:
    """The arguments of the pool (fit_judge.py, fit_scorer.py);
    with fit=True, --write-calibration too."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "rag" / "bench")
    ap.add_argument("--distractors", type=int, default=1000)
    ap.add_argument("--model", default="embeddinggemma-300m")
    ap.add_argument("--margin", type=float, default=3.0)
    if fit:
        ap.add_argument("--write-calibration", action="store_true", help="store the fitted values in rag/calibration.json")
    ap.add_argument("--near", action="store_true",
                    help="also ask each answerable question with only its own paragraph removed (near-misses: "
                         "the rest of its article stays) and train on those too")
    return ap


def pool_index(args) -> tuple[Index, object, Settings]:
    """The pooled index (built or reused from --work; --max-contexts where the script has it),
    the embedder and the settings."""
    docs, _ = load_sets(args.data, getattr(args, "max_contexts", 0))
    settings = Settings(project_root=args.work, index_dir=args.work / f"index-{args.model}", model=args.model)
    embedder = load_embedder(settings)
    build_index(settings, embedder, documents=docs + news_distractors(args.data, args.distractors))
    return Index.load(settings.index_dir, settings, embedder), embedder, settings


def load_pool(args) -> tuple[Index, object, list[Item]]:
    """The pooled index (pool_index), the embedder, and every question variant."""
    index, embedder, settings = pool_index(args)
    return index, embedder, make_items(index, embedder, args.work, args.data, settings, getattr(args, "near", False))


def folds(items, sets=REPORTED):
    """(held-out set, train item numbers, test item numbers), leave one set out; xquad_ar and
    xquad_en (the same paragraphs) never train each other."""
    for held in sets:
        banned = {"xquad_ar", "xquad_en"} if held in ("xquad_ar", "xquad_en") else {held}
        yield held, [k for k, it in enumerate(items) if it.set not in banned], [k for k, it in enumerate(items) if it.set == held]

# ---------------------------------------------------------------- dialogues
LANGS = ("fa", "ar", "en")


def opening_lang(d) -> str:
    return d.turns[0].item.lang

# ---------------------------------------------------------------- small talk
# small talk written after SMALL_TALK and the threshold were fixed, none of it in SMALL_TALK
HELD_OUT = (
    "many thanks", "thanks so much for your help", "hey there", "good evening", "alright", "sounds good",
    "understood", "wonderful", "that's all, thanks", "have a nice day", "cheers", "excellent",
    "سپاس فراوان", "لطف کردی", "عالیه", "اوکی", "خسته نباشید", "روز خوش", "شب بخیر", "ممنونم ازت", "حله",
    "متوجه شدم",
    "ألف شكر", "يعطيك العافية", "مساء الخير", "طيب", "رائع", "أشكرك", "إلى اللقاء", "هذا كل شيء، شكرا", "حسنا فهمت",
    "جميل",
)

# ---------------------------------------------------------------- the verifier
PERSIAN = "qa/persianqa/pqa_test.json"  # half of its articles (persian_half), unanswerable questions included
PAIRS = ("ar>ar", "en>ar")  # the language pairs (question > sentence) of the training pairs


def answer_sentences(context: str, answers: list[dict]) -> tuple[list[str], set[int]]:
    spans = sentences(context)
    holds = set()
    for a in answers:
        s, e = a["answer_start"], a["answer_start"] + len(a["text"])
        holds |= {k for k, sp in enumerate(spans) if sp.start <= s < sp.end or s < sp.start < e}
    return [context[sp.start:sp.end] for sp in spans], holds


def persian_half(data: Path, held_out: bool = True) -> set[int]:
    """The article numbers of PersianQA (pqa_test.json) that training with persian=True keeps out
    (held_out) or uses (eval/train_verifier.py --persian)."""
    n = len(json.loads((data / PERSIAN).read_text("utf-8"))["data"])
    return {a for a in range(n) if (a % 2 == 1) == held_out}


def threshold_sweep(best: np.ndarray, ans: np.ndarray, grid: np.ndarray, max_wrong: float,
          header: str = "| threshold | answerable now abstained (wrong) | unanswerable now abstained |") -> float:
    """Print, for every fifth threshold of `grid`, the share of answerable and unanswerable
    questions whose best log-odds fall below it, and return the highest threshold of `grid`
    below which at most `max_wrong` of the answerable ones fall."""
    print(header)
    print("|---|---|---|")
    for t in grid[::5]:
        print(f"| {t:+.1f} | {np.mean(best[ans] < t):.3f} | "
              + (f"{np.mean(best[~ans] < t):.3f}" if (~ans).any() else "—") + " |")
    return float(max(t for t in grid if np.mean(best[ans] < t) <= max_wrong))

