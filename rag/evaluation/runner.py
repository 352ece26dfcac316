"""The runner: ask every gold question, score each answer, aggregate per mode and language."""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass

from rag.answer import Answer, QuestionError, abstention_rule
from rag.config import MODES, Settings
from rag.evaluation.gold import LANGS, GoldError, GoldItem
from rag.index import Index
from rag.metrics import (
    Calibration,
    abstention,
    best_threshold,
    citation_precision,
    citation_recall,
    containment,
    latency,
    mean,
    ndcg_at,
    recall_at,
    reciprocal_rank,
    token_f1,
)

K = 10  # passages retrieved per question: enough for Recall@10, MRR@10 and nDCG@10


@dataclass(frozen=True)
class QuestionScores:
    """Scores of one answer; None where a metric does not apply (unanswerable questions)."""

    recall_at_1: float | None = None
    recall_at_5: float | None = None
    recall_at_10: float | None = None
    mrr_at_10: float | None = None
    ndcg_at_10: float | None = None
    containment: float | None = None
    first_containment: float | None = None  # the gold answer in the first cited sentence
    answer_chars: float | None = None  # length of the cited sentences (None when it abstained)
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
        containment(text, item.answers),
        containment(answer.sentences[0], item.answers) if answer.sentences else 0.0,
        None if answer.abstained else float(sum(len(s) for s in answer.sentences)),
        token_f1(text, item.answers), citation_precision(cited, gold), citation_recall(cited, gold),
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
    first_containment: float | None
    answer_chars: float | None
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
    means = {f.name: mean(getattr(r.scores, f.name) for r in answerable)
             for f in dataclasses.fields(QuestionScores)}
    ab = abstention([r.answer.abstained for r in records], [r.item.answerable for r in records])
    p50, p95 = latency([r.latency_ms for r in records])
    some_unanswerable = len(answerable) < len(records)  # else precision, recall and F1 do not apply
    return Metrics(len(records), len(answerable), len(records) - len(answerable), **means,
                   abstention_precision=ab.precision if some_unanswerable else None,
                   abstention_recall=ab.recall if some_unanswerable else None,
                   abstention_f1=ab.f1 if some_unanswerable else None,
                   wrong_abstention_rate=ab.wrong_rate, latency_p50_ms=p50, latency_p95_ms=p95)


@dataclass(frozen=True)
class EvalRun:
    modes: tuple[str, ...]
    records: tuple[Record, ...]  # mode by mode, each in the order of the items
    metrics: dict[str, dict[str, Metrics]]  # mode -> "all" or a language -> metrics
    threshold: float | None  # the abstention threshold in force
    settings: Settings
    manifest: dict
    rule: str = ""  # how answers decide to abstain (abstention_rule)

    @property
    def primary(self) -> str:
        """The configured mode when it was run, else the first mode."""
        return self.settings.mode if self.settings.mode in self.modes else self.modes[0]

    def records_for(self, mode: str) -> list[Record]:
        return [r for r in self.records if r.mode == mode]


FALLBACK = "/fallback"  # a mode label's suffix: without the judge (the scorer's best score against its threshold)


def evaluate(engine, items: list[GoldItem], modes=("hybrid",), progress: bool = True, fallback: bool = False) -> EvalRun:
    """Ask every question in every mode; per-question records and metrics per mode and language.

    With fallback, every mode is also run without the judge (the sentence scorer alone), as
    the mode "<mode>/fallback", so that the two are compared on the same questions."""
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

    if fallback:
        modes = tuple(x for m in modes for x in (m, m + FALLBACK))
    off = engine.index.tuning.replace(judge=None)

    records: list[Record] = []
    with tqdm(total=len(items) * len(modes), desc="eval", unit="q", disable=not progress, file=sys.stderr) as bar:
        for mode in modes:
            bar.set_description(f"eval {mode}")
            for item in items:
                t0 = time.perf_counter()
                try:
                    ans = engine.ask(item.question, mode=mode.removesuffix(FALLBACK), k=K,
                                     tuning=off if mode.endswith(FALLBACK) else None)
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
    return EvalRun(modes, tuple(records), metrics, index.abstain_threshold(s), s, index.manifest,
                   abstention_rule(index, s))


def calibrate(run: EvalRun) -> Calibration:
    """The abstention threshold that maximises abstention F1 on the run's questions (primary mode)."""
    recs = run.records_for(run.primary)
    return best_threshold([r.answer.evidence for r in recs], [r.item.answerable for r in recs])


def store_calibration(index: Index, cal: Calibration, source: str, mode: str, key: str = "threshold") -> dict:
    """Save the threshold with the index (for its model) and return what was stored. `key`:
    "threshold" (the sentence score's, where there is no judge) or "judge_threshold" (the
    judge's log-odds)."""
    s = cal.scores
    values = cal.to_dict()
    values[key] = values.pop("threshold")
    values |= {"n_answerable": s.fp + s.tn, "n_unanswerable": s.tp + s.fn, "mode": mode,
                              "source": source, "calibrated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    index.save_override(values)
    return values
