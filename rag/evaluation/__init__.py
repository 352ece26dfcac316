"""Evaluation: gold loaders, the runner, calibration, reports and the `rag eval` command.

    items = load_gold("eval/gold/seed_qa.jsonl", settings.project_root)
    run = evaluate(engine, items, modes=("hybrid", "dense", "lexical"))
    run.metrics["hybrid"]["all"].recall_at_5

Gold questions come from our JSONL format (`load_gold`) or from any SQuAD v1.1/v2.0
file (`load_squad`, which also returns the contexts as documents to index); news
articles can be added as distractors (`load_distractors`). The metric functions
themselves are pure and live in `rag.metrics`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import re
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rag.answer import Answer, QuestionError
from rag.config import MODES, Settings
from rag.corpus import SUFFIXES, Document, load_corpus, load_project_corpus, make_document, read_file
from rag.index import Index, IndexProblem, build_index
from rag.metrics import (
    Calibration,
    Score,
    abstention,
    best_threshold,
    citation_precision,
    citation_recall,
    containment,
    latency,
    ndcg_at,
    recall_at,
    reciprocal_rank,
    token_f1,
)
from rag.text import detect_lang

LANGS = ("fa", "ar", "en", "other")
GOLD_FIELDS = ("id", "question", "lang", "answers", "sources", "notes")
REQUIRED_FIELDS = ("id", "question", "lang", "answers", "sources")
K = 10  # passages retrieved per question: enough for Recall@10, MRR@10 and nDCG@10


class GoldError(ValueError):
    """A gold file that cannot be used; the message names the file and the line."""


# ================================================================ gold data
@dataclass(frozen=True)
class GoldItem:
    id: str
    question: str
    lang: str
    answers: tuple[str, ...]  # empty when the question is unanswerable
    sources: tuple[str, ...]  # documents that answer it, as written in the gold file
    doc_ids: tuple[str, ...]  # the ids of those documents (what retrieval must find)
    notes: str = ""
    origin: str = ""  # "file line n": where it was read, for messages

    @property
    def answerable(self) -> bool:
        return bool(self.answers)

    def to_dict(self) -> dict:
        return {"id": self.id, "question": self.question, "lang": self.lang, "answers": list(self.answers),
                "sources": list(self.sources), "notes": self.notes}


def resolve_source(source: str, project_root: Path) -> list[Document]:
    """The documents a gold `sources` entry names: a corpus file, or `file.jsonl#line`."""
    file_part, _, line = source.partition("#")
    path = Path(project_root) / file_part
    if not path.is_file():
        raise FileNotFoundError(f"source {source!r} not found (no file {path})")
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"source {source!r} is not a corpus file type ({' '.join(SUFFIXES)})")
    docs, skipped = read_file(path, file_part)
    if line:
        docs = [d for d in docs if d.source == source]
    if not docs:
        reason = "; ".join(s.reason for s in skipped if not line or s.source == source)
        raise ValueError(f"source {source!r} holds no readable document" + (f" ({reason})" if reason else ""))
    return docs


def load_gold(path: Path | str, project_root: Path | str) -> list[GoldItem]:
    """Questions of a gold JSONL file; sources are resolved to document ids under project_root.

    Any bad line (invalid JSON, a missing or unknown field, a wrong type, a duplicate id,
    a source that does not exist) raises GoldError naming the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"gold file not found: {path}")
    try:
        text = path.read_text("utf-8-sig")
    except UnicodeDecodeError as e:
        raise GoldError(f"{path}: not UTF-8 text (bad byte at offset {e.start})") from e
    root = Path(project_root).resolve()
    resolved: dict[str, tuple[str, ...]] = {}
    items: list[GoldItem] = []
    first_line: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {n}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise GoldError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
        item = _gold_item(rec, where, root, resolved)
        if item.id in first_line:
            raise GoldError(f"{where}: duplicate id {item.id!r} (also on line {first_line[item.id]})")
        first_line[item.id] = n
        items.append(item)
    if not items:
        raise GoldError(f"{path}: no questions (expected one JSON object per line)")
    return items


def _gold_item(rec, where: str, root: Path, resolved: dict[str, tuple[str, ...]]) -> GoldItem:
    if not isinstance(rec, dict):
        raise GoldError(f"{where}: a line must be a JSON object with fields {', '.join(GOLD_FIELDS)}")
    missing = [f for f in REQUIRED_FIELDS if f not in rec]
    if missing:
        raise GoldError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(rec) - set(GOLD_FIELDS))
    if unknown:
        raise GoldError(f"{where}: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(GOLD_FIELDS)})")
    for name in ("id", "question"):
        if not isinstance(rec[name], str) or not rec[name].strip():
            raise GoldError(f"{where}: '{name}' must be a non-empty string")
    if rec["lang"] not in LANGS:
        raise GoldError(f"{where}: 'lang' must be one of {', '.join(LANGS)}, not {rec['lang']!r}")
    for name in ("answers", "sources"):
        value = rec[name]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise GoldError(f"{where}: '{name}' must be a list of non-empty strings ([] when unanswerable)")
    if not isinstance(rec.get("notes", ""), str):
        raise GoldError(f"{where}: 'notes' must be a string")
    answers, sources = tuple(rec["answers"]), tuple(rec["sources"])
    if bool(answers) != bool(sources):
        raise GoldError(f"{where}: 'answers' and 'sources' must both be empty (unanswerable) or both non-empty")
    doc_ids: list[str] = []
    for s in sources:
        if s not in resolved:
            try:
                resolved[s] = tuple(d.id for d in resolve_source(s, root))
            except (OSError, ValueError) as e:
                raise GoldError(f"{where}: {e}") from None
        doc_ids.extend(i for i in resolved[s] if i not in doc_ids)
    return GoldItem(rec["id"], rec["question"], rec["lang"], answers, sources, tuple(doc_ids),
                    rec.get("notes", ""), where)


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def load_squad(path: Path | str) -> tuple[list[Document], list[GoldItem]]:
    """The distinct contexts of a SQuAD v1.1/v2.0 file as documents, and its questions.

    Each question's gold document is its context; `is_impossible` questions are
    unanswerable (no answers, no gold document). Identical contexts become one document.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SQuAD file not found: {path}")
    try:
        data = json.loads(path.read_text("utf-8-sig"))
    except json.JSONDecodeError as e:
        raise GoldError(f"{path} line {e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise GoldError(f"{path}: not UTF-8 text (bad byte at offset {e.start})") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise GoldError(f"{path}: not SQuAD JSON (expected an object with a list 'data')")
    docs: dict[str, Document] = {}
    items: list[GoldItem] = []
    first: dict[str, str] = {}
    for i, article in enumerate(data["data"]):
        where_a = f"{path} data[{i}]"
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise GoldError(f"{where_a}: an article needs a list 'paragraphs'")
        title = str(article.get("title") or "").replace("_", " ").strip()
        title = "" if _UUID.match(title) else title
        for j, para in enumerate(article["paragraphs"]):
            where_p = f"{where_a}.paragraphs[{j}]"
            if not isinstance(para, dict) or not isinstance(para.get("context"), str) or not isinstance(para.get("qas"), list):
                raise GoldError(f"{where_p}: a paragraph needs a string 'context' and a list 'qas'")
            doc = make_document(para["context"], f"{path.name}#{i}.{j}", title=title)
            if doc is None:
                raise GoldError(f"{where_p}: the context has no text")
            doc = docs.setdefault(doc.id, doc)
            for q, qa in enumerate(para["qas"]):
                items.append(_squad_item(qa, f"{where_p}.qas[{q}]", doc))
                if items[-1].id in first:
                    raise GoldError(f"{items[-1].origin}: duplicate id {items[-1].id!r} (also at {first[items[-1].id]})")
                first[items[-1].id] = items[-1].origin
    if not items:
        raise GoldError(f"{path}: no questions")
    return list(docs.values()), items


def _squad_item(qa, where: str, doc: Document) -> GoldItem:
    if not isinstance(qa, dict) or "id" not in qa or not isinstance(qa.get("question"), str) or not qa["question"].strip():
        raise GoldError(f"{where}: a question needs an 'id' and a non-empty string 'question'")
    impossible = bool(qa.get("is_impossible", False))
    answers: list[str] = []
    for a in [] if impossible else qa.get("answers") or []:
        if not isinstance(a, dict) or not isinstance(a.get("text"), str):
            raise GoldError(f"{where}: each answer needs a string 'text'")
        if a["text"].strip() and a["text"].strip() not in answers:
            answers.append(a["text"].strip())
    if not impossible and not answers:
        raise GoldError(f"{where}: no answers, and not marked is_impossible")
    lang = detect_lang(qa["question"])
    return GoldItem(str(qa["id"]), qa["question"], lang if lang in LANGS else "other", tuple(answers),
                    (doc.source,) if answers else (), (doc.id,) if answers else (), "", where)


# ================================================================ distractors
_NEWS_SUFFIXES = (".json", ".zip")


def load_distractors(path: Path | str, limit: int | None = None, seed: int = 0) -> list[Document]:
    """Extra documents: a corpus folder, or news JSON lists (.json files, or .zip files of them).

    News articles are `{title, abstract?, paragraphs[] | content | text, link | url, date...}`
    (fars_news and saudinewsnet). A folder holding .json/.zip files is read as news and
    its other files (README, LICENSE) are ignored. With `limit`, a random sample (fixed
    by `seed`) of that many documents is returned.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"distractors not found: {path}")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        news = [p for p in files if p.suffix.lower() in _NEWS_SUFFIXES]
        if not news:
            docs = load_corpus(path, path.parent).documents
            return _sample(docs, limit, seed)
        files = news
    else:
        files = [path]
    raw: list[tuple[str, dict]] = []
    for f in files:
        label = f.relative_to(path.parent).as_posix()
        if f.suffix.lower() == ".zip":
            with zipfile.ZipFile(f) as z:
                for name in sorted(n for n in z.namelist() if n.lower().endswith(".json")):
                    raw.extend(_articles(z.read(name), f"{label}/{name}"))
        elif f.suffix.lower() == ".json":
            raw.extend(_articles(f.read_bytes(), label))
        else:
            docs, _ = read_file(f, label)
            raw.extend((d.source, {"_doc": d}) for d in docs)
    chosen = _sample(raw, limit, seed)
    out: dict[str, Document] = {}
    for source, rec in chosen:
        doc = rec.get("_doc") or _article_document(rec, source)
        if doc is not None:
            out.setdefault(doc.id, doc)
    return list(out.values())


def _sample(values: list, limit: int | None, seed: int) -> list:
    if limit is None or limit >= len(values):
        return list(values)
    keep = sorted(random.Random(seed).sample(range(len(values)), limit))
    return [values[i] for i in keep]


def _articles(data: bytes, label: str) -> list[tuple[str, dict]]:
    try:
        recs = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"distractor file {label} is not UTF-8 JSON ({e})") from None
    if not isinstance(recs, list) or not all(isinstance(r, dict) for r in recs):
        raise ValueError(f"distractor file {label}: expected a JSON list of article objects")
    return [(f"{label}#{i}", r) for i, r in enumerate(recs)]


def _article_document(rec: dict, source: str) -> Document | None:
    title = " ".join(str(rec.get("title") or "").split())
    parts = [title] if title else []
    if rec.get("abstract"):
        parts.append(str(rec["abstract"]))
    body = rec.get("paragraphs") or rec.get("content") or rec.get("text") or ""
    if isinstance(body, list):
        parts.extend(str(p) for p in body)
    else:
        parts.append(str(body))
    return make_document("\n\n".join(p for p in parts if p.strip()), source, title=title,
                         url=str(rec.get("link") or rec.get("url") or ""),
                         date=str(rec.get("date") or rec.get("date_extracted") or ""))


# ================================================================ running
@dataclass(frozen=True)
class QuestionScores:
    """Scores of one answer; None where a metric does not apply (unanswerable questions)."""

    recall_at_1: float | None = None
    recall_at_5: float | None = None
    recall_at_10: float | None = None
    mrr_at_10: float | None = None
    ndcg_at_10: float | None = None
    containment: float | None = None
    f1: float | None = None
    citation_precision: float | None = None  # also None when nothing is cited
    citation_recall: float | None = None


def score_question(item: GoldItem, answer: Answer) -> QuestionScores:
    """Retrieval, answer and citation scores of one answer to an answerable gold question."""
    if not item.answerable:
        return QuestionScores()
    ranked = [h.passage.doc_id for h in answer.hits]
    gold = set(item.doc_ids)
    text = " ".join(answer.sentences)  # the cited sentences, without the [n] markers
    cited = [c.doc_id for c in answer.citations]
    return QuestionScores(
        recall_at(ranked, gold, 1), recall_at(ranked, gold, 5), recall_at(ranked, gold, 10),
        reciprocal_rank(ranked, gold, 10), ndcg_at(ranked, gold, 10),
        containment(text, item.answers), token_f1(text, item.answers),
        citation_precision(cited, gold), citation_recall(cited, gold),
    )


@dataclass(frozen=True)
class Record:
    item: GoldItem
    mode: str
    answer: Answer
    latency_ms: float
    scores: QuestionScores


@dataclass(frozen=True)
class Metrics:
    """Aggregates over a set of records: answer metrics over answerable questions only."""

    n: int
    answerable: int
    unanswerable: int
    recall_at_1: float | None
    recall_at_5: float | None
    recall_at_10: float | None
    mrr_at_10: float | None
    ndcg_at_10: float | None
    containment: float | None
    f1: float | None
    citation_precision: float | None
    citation_recall: float | None
    abstention_precision: float | None
    abstention_recall: float | None
    abstention_f1: float | None
    wrong_abstention_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in dataclasses.asdict(self).items()}


def summarize(records: list[Record]) -> Metrics:
    answerable = [r for r in records if r.item.answerable]
    means = {f.name: Score.mean(getattr(r.scores, f.name) for r in answerable).value
             for f in dataclasses.fields(QuestionScores)}
    ab = abstention([r.answer.abstained for r in records], [r.item.answerable for r in records])
    p50, p95 = latency([r.latency_ms for r in records])
    return Metrics(len(records), len(answerable), len(records) - len(answerable), **means,
                   abstention_precision=ab.precision, abstention_recall=ab.recall, abstention_f1=ab.f1,
                   wrong_abstention_rate=ab.wrong_rate, latency_p50_ms=p50, latency_p95_ms=p95)


@dataclass(frozen=True)
class EvalRun:
    modes: tuple[str, ...]
    records: tuple[Record, ...]  # mode by mode, each in the order of the items
    metrics: dict[str, dict[str, Metrics]]  # mode -> "all" or a language -> metrics
    threshold: float | None  # the abstention threshold in force
    settings: Settings
    manifest: dict

    @property
    def primary(self) -> str:
        """The configured mode when it was run, else the first mode."""
        return self.settings.mode if self.settings.mode in self.modes else self.modes[0]

    def records_for(self, mode: str) -> list[Record]:
        return [r for r in self.records if r.mode == mode]


def evaluate(engine, items: list[GoldItem], modes=("hybrid",), progress: bool = True, k: int = K) -> EvalRun:
    """Ask every question in every mode; per-question records and metrics per mode and language."""
    modes = tuple(modes)
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ValueError(f"modes must be among {', '.join(MODES)}, not {', '.join(bad) or 'none'}")
    index = engine.index
    for item in items:
        if any(d not in index.documents for d in item.doc_ids):
            raise GoldError(f"{item.origin}: a gold document of {', '.join(item.sources)} is not in the index at "
                            f"{engine.settings.index_dir}: rebuild it with `rag index` (the file may have changed since)")
    engine.warm_up()
    from tqdm import tqdm

    records: list[Record] = []
    with tqdm(total=len(items) * len(modes), desc="eval", unit="q", disable=not progress, file=sys.stderr) as bar:
        for mode in modes:
            bar.set_description(f"eval {mode}")
            for item in items:
                t0 = time.perf_counter()
                try:
                    ans = engine.ask(item.question, mode=mode, k=k)
                except QuestionError as e:
                    raise GoldError(f"{item.origin}: {e}") from None
                ms = (time.perf_counter() - t0) * 1000
                records.append(Record(item, mode, ans, ms, score_question(item, ans)))
                bar.update()
    metrics = {}
    for mode in modes:
        recs = [r for r in records if r.mode == mode]
        langs = sorted({r.item.lang for r in recs}, key=lambda x: (LANGS + (x,)).index(x))
        metrics[mode] = {"all": summarize(recs)} | {lang: summarize([r for r in recs if r.item.lang == lang]) for lang in langs}
    s = engine.settings
    threshold = index.abstain_threshold(s)
    return EvalRun(modes, tuple(records), metrics, threshold, s, index.manifest)


def calibrate(run: EvalRun, mode: str | None = None) -> Calibration:
    """The abstention threshold that maximises abstention F1 on the run's questions."""
    recs = run.records_for(mode or run.primary)
    return best_threshold([r.answer.evidence for r in recs], [r.item.answerable for r in recs])


def store_calibration(index: Index, cal: Calibration, source: str, mode: str) -> dict:
    """Save the threshold with the index (for its model) and return what was stored."""
    s = cal.scores
    values = {"threshold": cal.threshold, "f1": s.f1, "precision": s.precision, "recall": s.recall,
              "wrong_abstention_rate": s.wrong_rate, "n_answerable": s.fp + s.tn, "n_unanswerable": s.tp + s.fn,
              "mode": mode, "source": source, "calibrated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    index.save_calibration(values)
    return values


# ================================================================ indexes for evaluation corpora
def cache_dir(settings: Settings, documents: list[Document]) -> Path:
    """eval/cache/<hash of the documents and the index settings>/ (git-ignored)."""
    key = "\n".join(sorted(d.id for d in documents))
    key += f"\n{settings.model}|{settings.dim}|{settings.chunk_size}|{settings.chunk_overlap}|{settings.faiss}"
    return settings.project_root / "eval" / "cache" / hashlib.sha256(key.encode()).hexdigest()[:16]


def ensure_index(settings: Settings, embedder, documents: list[Document], progress: bool = True) -> bool:
    """Make settings.index_dir an index of exactly these documents; True if it was (re)built.

    An index already holding them is reused; otherwise a build embeds only text that the
    previous build in the same folder did not have.
    """
    try:
        idx = Index.load(settings.index_dir, settings, embedder, verify=False)
        chunking = idx.manifest.get("chunking", {})
        if (sorted(idx.documents) == sorted(d.id for d in documents)
                and chunking.get("chunk_size") == settings.chunk_size
                and chunking.get("chunk_overlap") == settings.chunk_overlap):
            if progress:
                print(f"reusing the index at {settings.relative(settings.index_dir)} ({len(documents)} documents)",
                      file=sys.stderr)
            return False
    except IndexProblem:
        pass
    if progress:
        print(f"indexing {len(documents)} documents into {settings.relative(settings.index_dir)}", file=sys.stderr)
    build_index(settings, embedder, progress=progress, documents=documents)
    return True


# ================================================================ reports
COLUMNS = [  # (header, Metrics field, kind)
    ("R@1", "recall_at_1", "f"), ("R@5", "recall_at_5", "f"), ("R@10", "recall_at_10", "f"),
    ("MRR", "mrr_at_10", "f"), ("nDCG", "ndcg_at_10", "f"), ("cont", "containment", "f"), ("F1", "f1", "f"),
    ("citP", "citation_precision", "f"), ("citR", "citation_recall", "f"),
    ("absP", "abstention_precision", "f"), ("absR", "abstention_recall", "f"), ("absF1", "abstention_f1", "f"),
    ("wrongAbs", "wrong_abstention_rate", "f"), ("p50ms", "latency_p50_ms", "ms"), ("p95ms", "latency_p95_ms", "ms"),
]
LONG_NAMES = {
    "R@1": "Recall@1", "R@5": "Recall@5", "R@10": "Recall@10", "MRR": "MRR@10", "nDCG": "nDCG@10",
    "cont": "containment", "F1": "token F1", "citP": "citation P", "citR": "citation R",
    "absP": "abstention P", "absR": "abstention R", "absF1": "abstention F1", "wrongAbs": "wrong abstentions",
    "p50ms": "median ms", "p95ms": "p95 ms",
}


def _fmt(v, kind: str) -> str:
    if v is None:
        return "—"
    return f"{v:.0f}" if kind == "ms" else f"{v:.3f}"


def _rows(run: EvalRun) -> list[list[str]]:
    rows = []
    for mode in run.modes:
        by_lang = run.metrics[mode]
        for lang, m in by_lang.items():
            if lang != "all" and len(by_lang) == 2:
                continue  # one language: its row would repeat "all"
            rows.append([mode, lang, str(m.n), f"{m.answerable}/{m.unanswerable}"]
                        + [_fmt(getattr(m, f), kind) for _, f, kind in COLUMNS])
    return rows


def format_table(run: EvalRun) -> str:
    """The summary as plain aligned text: one row per mode and language."""
    header = ["mode", "lang", "n", "ans/un"] + [c[0] for c in COLUMNS]
    rows = [header] + _rows(run)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for n, r in enumerate(rows):
        if n > 1 and r[1] == "all":
            lines.append("")
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    thr = "none (never abstains on evidence)" if run.threshold is None else f"{run.threshold:.4f}"
    lines.append(f"\nabstention threshold: {thr}; retrieval and answer metrics over answerable questions only")
    return "\n".join(lines)


def _settings_dict(s: Settings) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(s).items()}


def _num(x):
    if isinstance(x, float):
        return None if math.isinf(x) or math.isnan(x) else round(x, 6)
    return x


def record_dict(r: Record, index: Index | None = None) -> dict:
    gold = set(r.item.doc_ids)
    a = r.answer
    return {
        "id": r.item.id, "mode": r.mode, "lang": r.item.lang, "question": r.item.question,
        "answerable": r.item.answerable, "gold_answers": list(r.item.answers), "gold_sources": list(r.item.sources),
        "notes": r.item.notes, "answer": a.text, "abstained": a.abstained, "evidence": _num(a.evidence),
        "threshold": _num(a.threshold),
        "citations": [c.to_dict() | {"gold": c.doc_id in gold} for c in a.citations],
        "retrieved": [{"rank": n, "doc_id": h.passage.doc_id,
                       "source": index.documents[h.passage.doc_id].source if index else None,
                       "start": h.passage.start, "end": h.passage.end, "score": _num(h.score),
                       "gold": h.passage.doc_id in gold} for n, h in enumerate(a.hits, start=1)],
        "scores": {k: _num(v) for k, v in dataclasses.asdict(r.scores).items()},
        "latency_ms": round(r.latency_ms, 1), "timings_ms": a.timings_ms,
    }


def results_dict(run: EvalRun, index: Index | None = None, info: dict | None = None) -> dict:
    return {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "gold": info or {},
        "settings": _settings_dict(run.settings),
        "index": run.manifest,
        "modes": list(run.modes),
        "threshold": _num(run.threshold),
        "metrics": {mode: {lang: m.to_dict() for lang, m in by.items()} for mode, by in run.metrics.items()},
        "records": [record_dict(r, index) for r in run.records],
    }


def write_report(run: EvalRun, out_dir: Path, index: Index | None = None, info: dict | None = None) -> list[Path]:
    """results.json, report.md and the PNG plots in out_dir; returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / "results.json"
    results.write_text(json.dumps(results_dict(run, index, info), ensure_ascii=False, indent=1), "utf-8")
    plots = plot_recall(run, out_dir / "recall_at_k.png"), plot_evidence(run, out_dir / "evidence.png")
    report = out_dir / "report.md"
    report.write_text(report_markdown(run, index, info, [p.name for p in plots]), "utf-8")
    return [results, report, *plots]


def _md_cell(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def report_markdown(run: EvalRun, index: Index | None = None, info: dict | None = None, plots=(), worst: int = 10) -> str:
    info = info or {}
    m = run.manifest
    thr = "none (never abstains on evidence)" if run.threshold is None else f"{run.threshold:.4f}"
    lines = [
        "# Evaluation report", "",
        f"- gold: `{info.get('path', '?')}` ({info.get('kind', '?')}); {info.get('evaluated', len(run.records_for(run.primary)))} questions evaluated",
        f"- index: `{run.settings.relative(run.settings.index_dir)}` — model `{m.get('model', {}).get('id')}`, "
        f"{m.get('corpus', {}).get('documents')} documents, {m.get('corpus', {}).get('passages')} passages",
        f"- modes: {', '.join(run.modes)}; abstention threshold: {thr}",
    ]
    if info.get("distractors"):
        lines.append(f"- distractors: `{info['distractors']}` ({info.get('n_distractors')} documents)")
    if info.get("calibration"):
        c = info["calibration"]
        lines.append(f"- calibrated now on this set ({c['mode']}): threshold {c['threshold']:.4f}, abstention F1 {c['f1']:.3f}")
    lines += ["", "Retrieval, answer and citation metrics are over answerable questions; abstention over all.", ""]
    header = ["mode", "lang", "n", "ans/un"] + [LONG_NAMES[c[0]] for c in COLUMNS]
    lines += ["## Metrics", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in _rows(run)]
    mode = run.primary
    recs = run.records_for(mode)

    def block(r: Record) -> list[str]:
        top = r.answer.hits[0].passage.doc_id if r.answer.hits else None
        top_src = index.documents[top].source if index and top else top
        s = r.scores
        out = [f"**{r.item.id}** ({r.item.lang}) {_md_cell(r.item.question)}", "",
               f"- expected: {_md_cell(' · '.join(r.item.answers) or '(unanswerable)')}"
               + (f" — from {', '.join(f'`{x}`' for x in r.item.sources)}" if r.item.sources else ""),
               f"- got{' (abstained)' if r.answer.abstained else ''}: {_md_cell(r.answer.text)}",
               f"- evidence {r.answer.evidence:.3f}; top passage from `{top_src}`"]
        if s.recall_at_5 is not None:
            out[-1] += f"; R@5 {s.recall_at_5:.2f}, MRR {s.mrr_at_10:.2f}, F1 {s.f1:.2f}"
        if r.item.notes:
            out.append(f"- notes: {_md_cell(r.item.notes)}")
        return out + [""]

    missed = sorted((r for r in recs if r.item.answerable and not r.scores.containment),
                    key=lambda r: (r.scores.recall_at_5, r.scores.mrr_at_10, r.scores.f1))
    answered = sorted((r for r in recs if not r.item.answerable and not r.answer.abstained),
                      key=lambda r: -r.answer.evidence)
    lines += ["", f"## Worst failures ({mode})", "",
              f"### Answerable questions whose answer lacks the gold answer ({len(missed)}), worst retrieval first", ""]
    for r in missed[:worst]:
        lines += block(r)
    lines += [f"### Unanswerable questions answered anyway ({len(answered)}), most confident first", ""]
    for r in answered[:worst]:
        lines += block(r)
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_recall(run: EvalRun, path: Path, k: int = K) -> Path:
    """Recall@k for k = 1..10, one line per mode."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ks = list(range(1, k + 1))
    for mode in run.modes:
        recs = [r for r in run.records_for(mode) if r.item.answerable]
        ranked = [[h.passage.doc_id for h in r.answer.hits] for r in recs]
        ys = [Score.mean(recall_at(x, r.item.doc_ids, kk) for x, r in zip(ranked, recs, strict=True)).value for kk in ks]
        ax.plot(ks, [math.nan if y is None else y for y in ys], marker="o", label=mode)
    ax.set(xlabel="k (passages)", ylabel="Recall@k", title="Recall@k by mode", ylim=(0, 1.02), xticks=ks)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_evidence(run: EvalRun, path: Path) -> Path:
    """Evidence scores of answerable vs unanswerable questions, with the threshold, per mode."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(run.modes), 1, figsize=(9, 2.2 * len(run.modes) + 0.8), squeeze=False)
    for ax, mode in zip(axes[:, 0], run.modes, strict=True):
        recs = run.records_for(mode)
        for answerable, label, y, colour in ((True, "answerable", 1, "tab:green"), (False, "unanswerable", 0, "tab:red")):
            xs = [r.answer.evidence for r in recs if r.item.answerable == answerable]
            jitter = [y + random.Random(i).uniform(-0.15, 0.15) for i in range(len(xs))]
            ax.scatter(xs, jitter, s=18, alpha=0.7, color=colour, label=f"{label} ({len(xs)})")
        if run.threshold is not None:
            ax.axvline(run.threshold, color="black", linestyle="--", label=f"threshold {run.threshold:.3f}")
        ax.set(yticks=[0, 1], yticklabels=["unanswerable", "answerable"], ylim=(-0.5, 1.5), title=f"evidence scores — {mode}")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    axes[-1, 0].set_xlabel("evidence (best sentence score; abstain below the threshold)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


# ================================================================ CLI
def add_eval_parser(sub) -> None:
    sp = sub.add_parser(
        "eval", help="evaluate retrieval, answers, citations and abstention on a gold set",
        description="Ask every gold question, score the answers and write results.json, report.md "
                    "and plots to eval/reports/<timestamp>/ (or --out).")
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--gold", type=Path, metavar="FILE.jsonl", help="gold questions in our JSONL format, over the project's index")
    src.add_argument("--squad", type=Path, metavar="FILE.json",
                     help="a SQuAD v1.1/v2.0 file: its contexts are indexed (cached under eval/cache/) and its questions asked")
    sp.add_argument("--distractors", type=Path, metavar="PATH",
                    help="extra documents: a corpus folder, or news .json/.zip files (or a folder of them)")
    sp.add_argument("--max-distractors", type=int, default=200, metavar="N",
                    help="sample at most N distractor documents (default 200, fixed seed; 0 = all)")
    sp.add_argument("--out", type=Path, metavar="DIR", help="report folder (default eval/reports/<timestamp>/)")
    modes = sp.add_mutually_exclusive_group()
    modes.add_argument("--compare", action="store_true", help=f"run every mode ({', '.join(MODES)}) on the same questions")
    modes.add_argument("--mode", choices=MODES, help="the one mode to run (default: the configured mode, hybrid)")
    sp.add_argument("--limit", type=int, metavar="N", help="only the first N questions (the corpus stays whole)")
    sp.add_argument("--calibrate", action="store_true",
                    help="choose the abstention threshold with the best abstention F1 on this set and store it with the index")
    sp.add_argument("--corpus", type=Path, help="corpus folder (with --gold --distractors; default corpus/)")
    sp.add_argument("--index", type=Path, help="index folder (default index/; with --squad or --distractors: eval/cache/<hash>/)")
    sp.add_argument("--model", help="embedding model (default embeddinggemma-300m; hash-256 for quick checks)")
    sp.add_argument("--json", action="store_true", help="print the metrics as JSON instead of the table")
    sp.add_argument("--quiet", action="store_true", help="no progress output")
    sp.set_defaults(func=cmd_eval)


def _report_dir(settings: Settings) -> Path:
    base = settings.project_root / "eval" / "reports" / time.strftime("%Y%m%d-%H%M%S")
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def cmd_eval(args) -> int:
    from rag.engine import Engine

    progress = not args.quiet
    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be at least 1")
    if args.max_distractors < 0:
        raise ValueError("--max-distractors must be 0 (all) or more")
    settings = Settings.from_env(corpus_dir=args.corpus, model=args.model, mode=args.mode)
    documents: list[Document] | None = None
    if args.squad:
        documents, items = load_squad(args.squad)
        info = {"kind": "squad", "path": str(args.squad), "questions": len(items), "contexts": len(documents)}
    else:
        items = load_gold(args.gold, settings.project_root)
        info = {"kind": "gold", "path": str(args.gold), "questions": len(items)}
    if args.distractors:
        extra = load_distractors(args.distractors, limit=args.max_distractors or None)
        if documents is None:
            documents = load_project_corpus(settings).documents
        known = {d.id for d in documents}
        extra = [d for d in extra if d.id not in known]
        documents = documents + extra
        info |= {"distractors": str(args.distractors), "n_distractors": len(extra)}
        if progress:
            print(f"added {len(extra)} distractor documents from {args.distractors}"
                  + (f" (a sample: --max-distractors {args.max_distractors})" if args.max_distractors else ""), file=sys.stderr)
    if documents is None:
        engine = Engine(settings.replace(index_dir=args.index))
    else:
        index_dir = Path(args.index or cache_dir(settings, documents)).expanduser().resolve()
        if index_dir == settings.index_dir:
            raise ValueError(f"--index {args.index} is the project's index: with --squad or --distractors the "
                             "index is rebuilt from other documents, so give another folder (default eval/cache/)")
        engine = Engine(settings.replace(index_dir=index_dir))
        ensure_index(engine.settings, engine.embedder, documents, progress)
    items = items[: args.limit] if args.limit else items
    if args.calibrate and len({i.answerable for i in items}) < 2:
        raise ValueError("--calibrate needs both answerable and unanswerable questions "
                         f"({sum(i.answerable for i in items)} of the {len(items)} questions are answerable)")
    info["evaluated"] = len(items)
    info["answerable"] = sum(i.answerable for i in items)
    modes = MODES if args.compare else (engine.settings.mode,)

    if args.calibrate:
        mode = engine.settings.mode
        cal = calibrate(evaluate(engine, items, (mode,), progress))
        stored = store_calibration(engine.index, cal, Path(info["path"]).name, mode)
        info["calibration"] = stored
        print(f"calibrated abstention threshold {cal.threshold:.4f} ({mode}): abstention F1 {cal.scores.f1:.3f}, "
              f"precision {_fmt(cal.scores.precision, 'f')}, recall {_fmt(cal.scores.recall, 'f')}, "
              f"wrong abstentions {_fmt(cal.scores.wrong_rate, 'f')} on {len(items)} questions "
              f"→ stored in {engine.settings.relative(engine.settings.index_dir / 'calibration.json')}", file=sys.stderr)
        if engine.settings.abstain_threshold is not None:
            print(f"warning: abstain_threshold is set explicitly ({engine.settings.abstain_threshold}); "
                  "it overrides the calibrated value in this run", file=sys.stderr)

    run = evaluate(engine, items, modes, progress)
    out = args.out or _report_dir(engine.settings)
    write_report(run, out, engine.index, info)
    if args.json:
        metrics = {mode: {lang: m.to_dict() for lang, m in by.items()} for mode, by in run.metrics.items()}
        print(json.dumps({"report": str(out), "threshold": _num(run.threshold), "metrics": metrics}, ensure_ascii=False, indent=1))
    else:
        print(format_table(run))
        print(f"report: {engine.settings.relative(out / 'report.md')}")
    return 0
