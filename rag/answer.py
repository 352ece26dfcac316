"""Grounded answers: the best source sentence (and at most one more, by default), verbatim, each with a citation — or abstain.

How an answer is decided: retrieval finds passages; the sentence scorer (rag.scorer)
shortlists their best sentences from vectors computed at indexing time; the judge
(rag.verifier: EmbeddingGemma reading the question and a sentence together) gives each
of the shortlist's first `top_k` its log-odds that the sentence states what is asked.
The answer leads with the judge's best sentence, and abstains when that log-odds is
under one threshold (rag/calibration.json, "judge", fitted by eval/fit_judge.py). A
second sentence must pass the same threshold. Where there is no judge (another
embedding model; the tests' hash embedder) the scorer's best score is held to its own
threshold instead.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace

import numpy as np

from rag.config import Settings
from rag.embedding import Embedder
from rag.fitting import standardised_from_dict
from rag.index import Index
from rag.retrieval import Hit, retrieve
from rag.scorer import DENSE_SCAN, score_sentences
from rag.small_talk import SMALL_TALK_REPLY, asks_nothing
from rag.text import detect_lang, language_pair, named_source_languages, names_other_sources, tokens
from rag.tuning import Tuning
from rag.verifier import load_verifier

MAX_QUESTION_CHARS = 2000

NO_ANSWER = {
    "fa": "منابع موجود به این پرسش پاسخ نمی‌دهند.",
    "ar": "المصادر المتاحة لا تجيب عن هذا السؤال.",
    "en": "The sources do not answer this question.",
}


class QuestionError(ValueError):
    """A question that cannot be asked (empty, or nothing to search for)."""


@dataclass(frozen=True)
class Citation:
    n: int
    doc_id: str
    source: str
    title: str
    start: int  # span of the cited sentence in the original document text
    end: int
    text: str
    passage_id: str
    passage_start: int
    passage_end: int
    date: str = ""  # the document's date (ISO), "" when unknown
    page: int | None = None  # the page the sentence starts on, for paged documents (PDF)

    def to_dict(self) -> dict:
        return {"n": self.n, "doc_id": self.doc_id, "source": self.source, "title": self.title,
                "start": self.start, "end": self.end, "text": self.text, "date": self.date, "page": self.page}

    @property
    def where(self) -> str:
        """The source as a citation names it: 'corpus/a.pdf, p. 3, 2025-06-14'."""
        return ", ".join(x for x in (self.source, f"p. {self.page}" if self.page else "", self.date[:10]) if x)


@dataclass(frozen=True)
class Answer:
    question: str
    text: str
    abstained: bool
    citations: list[Citation]
    hits: list[Hit]
    evidence: float  # compared with the threshold: the decision's best log-odds (without a judge: the best sentence score)
    threshold: float | None
    lang: str
    mode: str
    timings_ms: dict = field(default_factory=dict)
    sentences: tuple[str, ...] = ()
    pair: str = ""  # question language > language of the best sentence's document, e.g. "en>ar"
    best: int = -1  # the answer's first sentence (the judge's best candidate), -1 if none
    candidates: tuple[int, ...] = ()  # the scorer's best sentences (index sentences), best first, before any reading
    ordered: tuple[tuple[float, int], ...] = ()  # (log-odds, sentence) as the judge read them, best first, before
                                                 # a follow-up's lean on the previous turn (empty when abstained)
    source_langs: tuple[str, ...] = ()  # the languages of the sources the question names, which retrieval kept to
    small_talk: bool = False  # the message asks nothing ("thanks"): answered by SMALL_TALK_REPLY, nothing retrieved

    @property
    def margin(self) -> float:
        """evidence − threshold: how clearly the sources answer (negative: abstained)."""
        if self.threshold is None:
            return self.evidence
        return self.evidence - self.threshold

    @property
    def doc_ids(self) -> tuple[str, ...]:
        """The cited documents, in citation order, without repeats."""
        return tuple(dict.fromkeys(c.doc_id for c in self.citations))

    def to_dict(self, index: Index | None = None) -> dict:
        passages = []
        for h in self.hits:
            d = {"doc_id": h.passage.doc_id, "start": h.passage.start, "end": h.passage.end,
                 "text": h.passage.text, "score": round(h.score, 6)}
            if index is not None:
                d["source"] = index.documents[h.passage.doc_id].source
            passages.append(d)
        return {
            "question": self.question, "answer": self.text, "abstained": self.abstained,
            "citations": [c.to_dict() for c in self.citations], "passages": passages,
            "evidence": round(self.evidence, 6),
            "threshold": None if self.threshold is None else round(self.threshold, 6), "pair": self.pair,
            "lang": self.lang, "mode": self.mode, "timings_ms": self.timings_ms,
            "source_langs": list(self.source_langs), "small_talk": self.small_talk,
        }


DEFAULT_MARGIN = 0.08  # without a judge: a runner-up must score within this of the best sentence

CANDIDATES = 6  # the scorer's best sentences an Answer keeps (rag.conversation reads them again)

JUDGE_TOP_K = 6  # the candidates the judge reads where rag/calibration.json ("judge" "top_k") does not say

REDUNDANT_COSINE = 0.92  # a runner-up this close to a chosen sentence repeats it

REDUNDANT_OVERLAP = 0.8  # … or when this share of the shorter one's words are in the other


JUDGE_FEATURES = ("log_odds", "max_cos")  # what the decision reads: the judge's log-odds of a sentence, and
                                         # the best cosine of any shortlisted sentence with the question


@dataclass(frozen=True)
class Decision:
    """The one decision: a standardised logistic layer over JUDGE_FEATURES (rag/calibration.json,
    "judge", fitted by eval/fit_judge.py), whose log-odds an answer's sentence must reach."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    bias: float

    def __call__(self, log_odds: np.ndarray, max_cos: float) -> np.ndarray:
        x = np.stack([np.asarray(log_odds, np.float32), np.full(len(log_odds), max_cos, np.float32)], 1)
        return ((x - self.mean) / self.scale) @ self.coef + self.bias

    @classmethod
    def from_dict(cls, d: dict) -> Decision:
        return cls(*standardised_from_dict(d, JUDGE_FEATURES, "refit it (python eval/fit_judge.py --write-calibration)"))


def judge_spec(index: Index, settings: Settings) -> dict | None:
    """The judge's fitted values for this index's model (rag/calibration.json, "judge"), or None
    where there is none (another embedding model, the tests' hash embedder)."""
    if settings.model.startswith("hash-"):
        return None
    return index.tuning.get("judge") or None


def judge_top_k(index: Index) -> int:
    """How many of the scorer's best candidates the judge reads."""
    return int(index.tuning.get("judge", {}).get("top_k", JUDGE_TOP_K))


def judge_threshold(index: Index, settings: Settings) -> float:
    """The one threshold on the judge's log-odds: the setting when it is set, else the one
    `rag eval --calibrate` chose on this index, else the fitted one."""
    for t in (settings.abstain_threshold, index.tuning.judge_threshold, index.tuning["judge"]["threshold"]):
        if t is not None:
            return float(t)


def judge_logits(judge, index: Index, question: str, sentences) -> np.ndarray:
    """The judge's log-odds for `question` against the first `top_k` of `sentences` (the
    index's sentence numbers, best first)."""
    return judge.score(question, [index.sentence_text(j) for j in list(sentences)[:judge_top_k(index)]])


def judge(judge_model, index: Index, scored: list[tuple[float, int, Hit]], question: str, q_vec: np.ndarray,
          threshold: float) -> tuple[list[tuple[float, int, Hit]], float, set[int]]:
    """The scorer's best `top_k` candidates read by the judge, ordered by the decision's log-odds
    (the judge's, with the best cosine of the shortlist with `q_vec`: the same for every
    candidate, so the judge alone orders them; the others are left out), the best of them, and
    the sentences that reach the threshold (only they may follow the first)."""
    logits = judge_logits(judge_model, index, question, [j for _, j, _ in scored])
    max_cos = float((index.sentence_vectors[[j for _, j, _ in scored]] @ np.asarray(q_vec, np.float32)).max())
    decided = index.tuning.part("judge", Decision.from_dict)(logits, max_cos)
    top = scored[: len(logits)]
    order = np.argsort(-decided, kind="stable")
    return ([(float(decided[i]), top[i][1], top[i][2]) for i in order], float(decided.max()),
            {top[i][1] for i in range(len(top)) if decided[i] >= threshold})


def select(scored: list[tuple[float, int, Hit]], index: Index, settings: Settings,
           passed: set[int] | None = None, margin: float = DEFAULT_MARGIN) -> list[tuple[float, int, Hit]]:
    """The best sentence, plus up to max_sentences-1 runners-up that add evidence for it.

    A runner-up must pass the judge's threshold (`passed`; without a judge: score within
    `margin` of the best), come from the same document (another article may report
    another event: it stays one click away, among the retrieved passages) unless
    `extra_sentences` is "any", and not repeat a sentence already chosen."""
    if not scored:
        return []
    best = scored[0][0]
    chosen = [scored[0]]
    first_doc = scored[0][2].passage.doc_id
    words = [set(tokens(index.sentence_text(scored[0][1])))]
    for s, j, h in scored[1:]:
        if len(chosen) >= settings.max_sentences:
            break
        if passed is None and s < best - margin:
            break
        if passed is not None and j not in passed:
            continue
        if settings.extra_sentences == "same-document" and h.passage.doc_id != first_doc:
            continue
        w = set(tokens(index.sentence_text(j)))
        if any(_repeats(w, cw) for cw in words) or any(
                float(index.sentence_vectors[j] @ index.sentence_vectors[c[1]]) > REDUNDANT_COSINE for c in chosen):
            continue
        words.append(w)
        chosen.append((s, j, h))
    return chosen


def _repeats(a: set[str], b: set[str]) -> bool:
    """Whether two sentences say mostly the same words (e.g. one article quoting a line twice)."""
    if not a or not b:
        return a == b
    return len(a & b) / min(len(a), len(b)) >= REDUNDANT_OVERLAP


def retrieve_for_answer(index: Index, question: str, q_vec: np.ndarray, settings: Settings,
                        mode: str | None = None, k: int | None = None, prefer: Collection[str] = (),
                        only_preferred: bool = False) -> list[Hit]:
    """The ranking answer_pool needs: at least k, answer_passages and DENSE_SCAN hits.

    `prefer`: document ids whose passages get `settings.prefer_boost` added to their score
    (a follow-up's reading leans on the documents the previous answer cited); with
    `only_preferred`, the ranking keeps only their passages when any was retrieved."""
    n = max(k or settings.k, settings.answer_passages, DENSE_SCAN)
    if not prefer:
        return retrieve(index, question, q_vec, settings, mode=mode, k=n)
    hits = retrieve(index, question, q_vec, settings, mode=mode, k=max(n, settings.candidates))
    boosted = [replace(h, score=h.score + settings.prefer_boost) if h.passage.doc_id in prefer else h for h in hits]
    if only_preferred:
        boosted = [h for h in boosted if h.passage.doc_id in prefer] or boosted
    return sorted(boosted, key=lambda h: -h.score)[:n]


def check_question(question: str | None) -> str:
    """The question with its whitespace collapsed; QuestionError when it cannot be asked."""
    question = " ".join((question or "").split())
    if not question:
        raise QuestionError("the question is empty")
    try:
        question.encode("utf-8")
    except UnicodeEncodeError as e:  # bytes that were not UTF-8 (as surrogate escapes), or a lone surrogate
        try:
            bad = e.object[e.start:e.end].encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            bad = e.object[e.start:e.end].encode("utf-8", "backslashreplace")
        raise QuestionError(f"the question is not valid text: it holds bytes that are not UTF-8 ({bad!r} at "
                            f"character {e.start}); check the terminal's or the file's encoding") from None
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(f"the question is too long ({len(question)} characters; at most {MAX_QUESTION_CHARS})")
    return question


def embed_questions(index: Index, embedder: Embedder, questions: list[str], settings: Settings) -> list[tuple]:
    """(vector, None) per question, in one pass (the second place is kept for callers that
    pass `embedded` through)."""
    return [(v, None) for v in embedder.embed_queries(questions)]


def answer(index: Index, embedder: Embedder, question: str, settings: Settings,
           mode: str | None = None, k: int | None = None, *, embedded: tuple | None = None,
           prefer: Collection[str] = (), only_preferred: bool = False,
           search: tuple[str, np.ndarray] | None = None, judge_as: tuple[str, np.ndarray] | None = None,
           lean: tuple[np.ndarray, float] | None = None, tuning: Tuning | None = None) -> Answer:
    """Answer from the index's sentences, with citations, or abstain.

    `embedded`: the question's (vector, token states) from `embed_questions`, when already
    computed; `prefer`, `only_preferred`: documents whose passages retrieval boosts, or keeps
    alone (see retrieve_for_answer);
    `search`: (text, vector) to retrieve passages with instead of the question's (a
    follow-up searches with the conversation, and reads the sentences with its own words);
    `judge_as`: (text, vector) whose reading by the judge decides whether to abstain (a
    follow-up read in context: "and then?" alone states nothing to judge); the candidates
    are still ordered by the judge reading the question's own words;
    `lean`: (vector, weight): once the candidates are read, each one's score gets weight × its
    cosine with the vector (a follow-up read in context leans on the previous turn's search:
    "in which country?" after a question on Kerry's request is answered by the sentence that
    states the request, not by the first sentence that names a place; see lean_on);
    `tuning`: fitted values to answer with instead of the index's (rag.tuning)."""
    t0 = time.perf_counter()
    if tuning is not None:
        index = index.with_tuning(tuning)
    question = check_question(question)
    mode = mode or settings.mode
    lang = detect_lang(question)
    q_vec, _ = embedded if embedded is not None else embed_questions(index, embedder, [question], settings)[0]
    t1 = time.perf_counter()
    if asks_nothing(index, embedder, question, q_vec):
        lang = lang if lang in SMALL_TALK_REPLY else "en"
        return Answer(question, SMALL_TALK_REPLY[lang], True, [], [], 0.0, None, lang, mode,
                      {"embed": round((t1 - t0) * 1000, 1), "total": round((time.perf_counter() - t0) * 1000, 1)},
                      small_talk=True)
    k = k or settings.k
    s_text, s_vec = search if search is not None else (question, q_vec)
    prefer, only_preferred, source_langs = named_sources(index, question, prefer, only_preferred)
    hits = retrieve_for_answer(index, s_text, s_vec, settings, mode, k, prefer, only_preferred)
    t2 = time.perf_counter()
    scored, _ = score_sentences(index, hits, q_vec, question, settings)
    pair = language_pair(lang, index.documents[scored[0][2].passage.doc_id].lang) if scored else ""
    candidates = tuple(j for _, j, _ in scored[:CANDIDATES])
    t_judge = time.perf_counter()
    spec = judge_spec(index, settings)
    judge_model = load_verifier(settings) if spec is not None and scored else None
    passed = None
    if judge_model is not None:
        threshold = judge_threshold(index, settings)
        if judge_as is None:
            scored, evidence, passed = judge(judge_model, index, scored, question, q_vec, threshold)
        else:  # in context: whether to answer is judged on the question as understood (the joined
            # text), which sentence leads on its own words (else the previous turn's answer leads again)
            _, evidence, passed = judge(judge_model, index, scored, judge_as[0], judge_as[1], threshold)
            scored, _, _ = judge(judge_model, index, scored, question, q_vec, threshold)
    else:  # no judge for this model: the scorer's best score against its own threshold
        evidence, threshold = (scored[0][0] if scored else float("-inf")), index.abstain_threshold(settings)
    abstained = not scored or (threshold is not None and evidence < threshold)
    t_judge = time.perf_counter() - t_judge
    best = scored[0][1] if scored else -1
    ordered = () if abstained else tuple((s, j) for s, j, _ in scored)
    if lean is not None and not abstained:
        scored = lean_on(index, scored, *lean)
    citations = [] if abstained else cite(index, select(scored, index, settings, passed))
    text = " ".join(f"{c.text} [{c.n}]" for c in citations) or NO_ANSWER.get(lang, NO_ANSWER["en"])
    t3 = time.perf_counter()
    timings = {"embed": round((t1 - t0) * 1000, 1), "retrieve": round((t2 - t1) * 1000, 1),
               "select": round((t3 - t2 - t_judge) * 1000, 1), "judge": round(t_judge * 1000, 1),
               "total": round((t3 - t0) * 1000, 1)}
    return Answer(question, text, abstained, citations, hits[:k], evidence if scored else 0.0, threshold,
                  lang if lang in NO_ANSWER else "en", mode, timings, tuple(c.text for c in citations), pair,
                  best, candidates, ordered, source_langs)


def cite(index: Index, chosen: list[tuple[float, int, Hit]]) -> list[Citation]:
    """The chosen sentences as numbered citations: each one's exact span in its document."""
    citations = []
    for n, (_, j, h) in enumerate(chosen, start=1):
        doc = index.documents[h.passage.doc_id]
        s, e = int(index.sent_start[j]), int(index.sent_end[j])
        page_at = getattr(doc, "page_at", None)
        citations.append(Citation(n, doc.id, doc.source, doc.title, s, e, doc.text[s:e], h.passage.id,
                                  h.passage.start, h.passage.end, doc.date, page_at(s) if page_at else None))
    return citations


def named_sources(index: Index, question: str, prefer: Collection[str],
                  only_preferred: bool) -> tuple[Collection[str], bool, tuple[str, ...]]:
    """(prefer, only_preferred, languages) for retrieve_for_answer: a question that names the
    language of its source ("according to the Arabic report") keeps to the documents in that
    language, when any is retrieved (of `prefer`, a follow-up's previous documents, those in
    it, else all of them); other questions are left as they are (languages empty), and so is
    one about "both" of two sources that names one of them otherwise ("both the Asr Iran
    report and the Arabic report" asks about the Persian article too)."""
    named = named_source_languages(question)
    if not named or names_other_sources(question):
        return prefer, only_preferred, ()
    in_lang = frozenset().union(*(index.documents_by_lang.get(lang, ()) for lang in named))
    if not in_lang or len(in_lang) == len(index.documents):  # none, or all of them: nothing to keep to
        return prefer, only_preferred, ()
    kept = frozenset(prefer) & in_lang
    langs = tuple(sorted({index.documents[d].lang for d in (kept or in_lang)}))
    return kept or in_lang, True, langs


def lean_on(index: Index, scored: list[tuple[float, int, Hit]], vector: np.ndarray,
            weight: float) -> list[tuple[float, int, Hit]]:
    """The candidates re-ordered by score + weight × their sentence's cosine with `vector`."""
    if not weight or not scored:
        return scored
    cos = index.sentence_vectors[[j for _, j, _ in scored]] @ np.asarray(vector, np.float32)
    leaned = [(s + weight * float(c), j, h) for (s, j, h), c in zip(scored, cos, strict=True)]
    return sorted(leaned, key=lambda x: -x[0])


def abstention_rule(index: Index, settings: Settings) -> str:
    """How the answers of a run decide to abstain, in words, for the report."""
    if judge_spec(index, settings) is None:
        t = index.abstain_threshold(settings)
        return "never (no threshold)" if t is None else f"best sentence score below {t:.4f} (no judge for this model)"
    t = judge_threshold(index, settings)
    why = ("set explicitly" if settings.abstain_threshold is not None else
           "calibrated on this index by rag eval --calibrate" if index.tuning.judge_threshold is not None else "fitted")
    return (f"when the judge reads none of the scorer's best {judge_top_k(index)} sentences as stating the answer "
            f"(the decision's log-odds, from the judge's and the shortlist's best cosine, below {t:+.2f}, {why})")
