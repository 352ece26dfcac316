"""Grounded answers: the best source sentence (and at most one more, by default), verbatim, each with a citation — or abstain.

Sentence vectors are computed at indexing time, so answering costs one query
embedding plus a few dot products.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace

import numpy as np

from rag.answerability import Model, language_pair, question_features
from rag.config import Settings
from rag.embedding import Embedder
from rag.index import Index
from rag.reader import Reader, read
from rag.retrieval import Hit, retrieve
from rag.scorer import DENSE_SCAN, score_sentences
from rag.small_talk import SMALL_TALK_REPLY, asks_nothing
from rag.text import detect_lang, named_source_languages, names_other_sources, tokens
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
    evidence: float  # compared with the threshold: answerability log-odds, or the best sentence score
    threshold: float | None
    lang: str
    mode: str
    timings_ms: dict = field(default_factory=dict)
    sentences: tuple[str, ...] = ()
    pair: str = ""  # question language > language of the best sentence's document, e.g. "en>ar"
    best: int = -1  # index sentence the evidence was measured on (the scorer's best), -1 if none
    verified: float | None = None  # the verifier's best log-odds − the threshold it was held to: its own where
                                   # it judges, the veto threshold elsewhere (None: not read by it)
    candidates: tuple[int, ...] = ()  # the scorer's best sentences (index sentences), best first, before any reading
    ordered: tuple[tuple[float, int], ...] = ()  # (score, sentence) as read (reader or verifier), best first, before
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
            "verified": None if self.verified is None else round(self.verified, 6),
            "threshold": None if self.threshold is None else round(self.threshold, 6), "pair": self.pair,
            "lang": self.lang, "mode": self.mode, "timings_ms": self.timings_ms,
            "source_langs": list(self.source_langs), "small_talk": self.small_talk,
        }


DEFAULT_MARGIN = 0.08

CANDIDATES = 6  # the scorer's best sentences an Answer keeps (rag.conversation has the verifier read them)

VERIFIER_TOP_K = 6  # the candidates the verifier reads where rag/calibration.json ("verifier" "top_k") does not say

REDUNDANT_COSINE = 0.92  # a runner-up this close to a chosen sentence repeats it

REDUNDANT_OVERLAP = 0.8  # … or when this share of the shorter one's words are in the other


def active_reader(index: Index, settings: Settings, embedder: Embedder | None = None):
    """The reader (rag.reader.Reader) to use for this question, or None. auto: where its extra
    pass is cheap, i.e. the embedder runs through OpenVINO (~0.14 s a question in float32);
    torch in float32 costs ~0.4 s (docs/results.md, "The reader"). Never by the CPU's flags:
    the same question gets the same answer on every machine."""
    reader = index.tuning.part("reader", Reader.from_dict)
    if settings.reader == "off" or reader is None:
        return None
    if settings.reader == "auto":
        return reader if embedder is not None and embedder.backend.startswith("openvino") else None
    return reader


def verifier_top_k(index: Index) -> int:
    """How many of the scorer's best candidates the verifier reads."""
    return int(index.tuning.get("verifier", {}).get("top_k", VERIFIER_TOP_K))


def verifier_logits(verifier, index: Index, question: str, sentences) -> np.ndarray:
    """The verifier's log-odds for `question` against the first `top_k` (rag/calibration.json,
    "verifier") of `sentences` (the index's sentence numbers, best first)."""
    k = verifier_top_k(index)
    return verifier.score(question, [index.sentence_text(j) for j in list(sentences)[:k]])


def verify(verifier, index: Index, scored: list[tuple[float, int, Hit]],
           question: str) -> tuple[list[tuple[float, int, Hit]], float, set[int]]:
    """The scorer's best `top_k` candidates read by the verifier (rag.verifier): ordered by
    score + weight × the verifier's log-odds (the others are left out), with the best
    log-odds − threshold (negative: no candidate states what is asked), and the sentences
    that reach the threshold (only they may follow the first)."""
    spec = index.tuning.get("verifier", {})
    threshold, weight = float(spec.get("threshold", 0.0)), float(spec.get("weight", 1.0))
    logits = verifier_logits(verifier, index, question, [j for _, j, _ in scored])
    top = scored[: len(logits)]
    combined = np.array([s for s, _, _ in top]) + weight * logits
    order = np.argsort(-combined, kind="stable")
    return ([(float(combined[i]), top[i][1], top[i][2]) for i in order], float(logits.max()) - threshold,
            {top[i][1] for i in range(len(top)) if logits[i] >= threshold})


def verifier_reads(index: Index, settings: Settings, pair: str, own_words: bool) -> bool:
    """Whether the verifier reads this answer: always in strict mode (verifier=on); with
    verifier=auto only where it can judge: a question read on its own words (an elliptical
    follow-up read in context states nothing to verify) whose language pair (question >
    best sentence's document) it was trained or measured on (rag/calibration.json,
    "verifier" "pairs")."""
    if settings.verifier != "auto":
        return settings.verifier == "on"
    return own_words and pair in index.tuning.get("verifier", {}).get("pairs", ())


def verifier_vetoes(index: Index, settings: Settings, pair: str, own_words: bool) -> bool:
    """Whether the verifier may only veto this answer: with verifier=auto, a question read
    on its own words in a language pair it does not judge (see verifier_reads), where
    rag/calibration.json has a veto threshold ("verifier" "veto_threshold", fitted by
    eval/fit_veto.py)."""
    spec = index.tuning.get("verifier", {})
    return (settings.verifier == "auto" and own_words and "veto_threshold" in spec
            and pair not in spec.get("pairs", ()))


def veto(verifier, index: Index, scored: list[tuple[float, int, Hit]], question: str) -> float:
    """The verifier's best log-odds over the scorer's best `top_k` candidates − the veto
    threshold (negative: not one of them comes near stating what is asked; the order is
    left to the scorer and the reader)."""
    logits = verifier_logits(verifier, index, question, [j for _, j, _ in scored])
    return float(logits.max()) - float(index.tuning["verifier"]["veto_threshold"])


def select(scored: list[tuple[float, int, Hit]], index: Index, settings: Settings,
           verified: set[int] | None = None) -> list[tuple[float, int, Hit]]:
    """The best sentence, plus up to max_sentences-1 close runners-up that add evidence for it.

    A runner-up is kept when it scores within the margin of the best (sentence_margin,
    fitted on the dialogue gold set by eval/fit_margins.py), comes from the same document
    (another article may report another event: it stays one click away, among the
    retrieved passages) unless `extra_sentences` is "any", and does not repeat a sentence
    already chosen. In an answer the verifier read (`verified`: the sentences it accepts)
    a runner-up must be one of those, within verified_margin on its scale (unbounded
    unless set: every bound measured cost answers, see docs/results.md, "Concise answers")."""
    if not scored:
        return []
    best = scored[0][0]
    margin = settings.sentence_margin
    if margin is None:
        margin = index.tuning.get("sentence_margin", DEFAULT_MARGIN)
    if verified is not None:  # read by the verifier: a runner-up must be verified, and the scores' scale is its own
        margin = math.inf if settings.verified_margin is None else settings.verified_margin
    chosen = [scored[0]]
    first_doc = scored[0][2].passage.doc_id
    words = [set(tokens(index.sentence_text(scored[0][1])))]
    for s, j, h in scored[1:]:
        if len(chosen) >= settings.max_sentences or s < best - margin:
            break
        if settings.extra_sentences == "same-document" and h.passage.doc_id != first_doc:
            continue
        if verified is not None and j not in verified:
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
    """(vector, token states or None) per question, in one pass; token states only when the
    reader is on (they come from the same forward pass)."""
    if active_reader(index, settings, embedder) is not None and settings.verifier != "on":  # auto: either may read
        vecs, toks = embedder.embed_queries_with_tokens(questions)
        return list(zip(vecs, toks, strict=True))
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
    `judge_as`: (text, vector) whose answerability decides whether to abstain (a follow-up:
    the conversation's, since "and then?" alone has nothing to answer);
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
    reader = active_reader(index, settings, embedder)
    q_vec, q_tokens = embedded if embedded is not None else embed_questions(index, embedder, [question], settings)[0]
    if reader is not None and q_tokens is None:
        reader = None
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
    scored, rows = score_sentences(index, hits, q_vec, question, settings)
    j_text, j_vec = judge_as if judge_as is not None else (question, q_vec)
    evidence, threshold, pair = decide(index, settings, hits, scored, j_vec, j_text, lang)
    abstained = not scored or (threshold is not None and evidence < threshold)
    best = scored[0][1] if scored else -1
    candidates = tuple(j for _, j, _ in scored[:CANDIDATES])
    t_verify = time.perf_counter()
    verified, passed = None, None
    reads = not abstained and verifier_reads(index, settings, pair, own_words=judge_as is None)
    vetoes = not abstained and not reads and verifier_vetoes(index, settings, pair, own_words=judge_as is None)
    verifier = load_verifier(settings) if reads or vetoes else None
    if verifier is not None and reads:
        # the turn's own words (measured: reading the conversation's search text instead lets
        # more off-topic turns through)
        scored, verified, passed = verify(verifier, index, scored, question)
    elif verifier is not None:
        verified = veto(verifier, index, scored, question)
    abstained = abstained or (verified is not None and verified < 0)
    t_read = time.perf_counter()
    t_verify = t_read - t_verify
    if not abstained and not (reads and verifier is not None) and reader is not None:
        # the reader orders the candidates where the verifier does not (it replaces the reader)
        scored = read(reader, embedder, index, scored, rows, q_tokens)
    t_read = time.perf_counter() - t_read
    ordered = () if abstained else tuple((s, j) for s, j, _ in scored)
    if lean is not None and not abstained:
        scored = lean_on(index, scored, *lean)
    citations = [] if abstained else cite(index, select(scored, index, settings, passed))
    text = " ".join(f"{c.text} [{c.n}]" for c in citations) or NO_ANSWER.get(lang, NO_ANSWER["en"])
    t3 = time.perf_counter()
    timings = {"embed": round((t1 - t0) * 1000, 1), "retrieve": round((t2 - t1) * 1000, 1),
               "select": round((t3 - t2 - t_read - t_verify) * 1000, 1), "read": round(t_read * 1000, 1),
               "verify": round(t_verify * 1000, 1),
               "total": round((t3 - t0) * 1000, 1)}
    return Answer(question, text, abstained, citations, hits[:k], evidence if scored else 0.0, threshold,
                  lang if lang in NO_ANSWER else "en", mode, timings, tuple(c.text for c in citations), pair,
                  best, verified, candidates, ordered, source_langs)


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


def decide(index: Index, settings: Settings, hits: list[Hit], scored: list[tuple[float, int, Hit]],
           q_vec: np.ndarray, question: str, lang: str) -> tuple[float, float | None, str]:
    """(evidence, threshold, language pair): the answer abstains when evidence < threshold.

    With the answerability model (the default where one is calibrated for the model) the
    evidence is its log-odds that the corpus answers the question and the threshold is
    the one of the language pair (question > best sentence's document); an explicit
    `abstain_threshold` setting, or one calibrated on this index by `rag eval --calibrate`,
    overrides every pair. Otherwise the evidence is the best
    sentence score against one threshold."""
    if not scored:
        return float("-inf"), index.abstain_threshold(settings), ""
    pair = language_pair(lang, index.documents[scored[0][2].passage.doc_id].lang)
    model = index.tuning.part("answerability", Model.from_dict) if settings.answerability == "on" else None
    if model is None:
        return scored[0][0], index.abstain_threshold(settings), pair
    d = model.decide(question_features(index, hits, scored, q_vec, question, lang), pair)
    for threshold in (settings.abstain_threshold, index.tuning.answerability_threshold, d.threshold):
        if threshold is not None:  # the setting, else `rag eval --calibrate` on this index, else the pair's
            return d.score, threshold, pair


def abstention_rule(index: Index, settings: Settings) -> str:
    """How the answers of a run decide to abstain, in words, for the report."""
    spec = index.tuning.get("verifier")
    if settings.verifier == "off" or spec is None or settings.model.startswith("hash-"):
        return _first_rule(index, settings)
    where = ("every answer" if settings.verifier == "on"
             else f"a question read on its own words in {', '.join(spec.get('pairs', ())) or 'no language pair'}")
    rule = (f"{_first_rule(index, settings)}; or, for {where}, when the verifier reads none of the best "
            f"{verifier_top_k(index)} sentences as stating the answer (log-odds below {spec.get('threshold', 0.0):+.2f})")
    if settings.verifier == "auto" and "veto_threshold" in spec:
        rule += (f"; in other language pairs, when none comes near it (log-odds below "
                 f"{spec['veto_threshold']:+.2f})")
    return rule


def _first_rule(index: Index, settings: Settings) -> str:
    model = index.tuning.part("answerability", Model.from_dict) if settings.answerability == "on" else None
    if model is None:
        t = index.abstain_threshold(settings)
        return "never (no threshold)" if t is None else f"best sentence score below {t:.4f}"
    if settings.abstain_threshold is not None:
        return f"answerability log-odds below {settings.abstain_threshold:.4f} (set explicitly)"
    if index.tuning.answerability_threshold is not None:
        return (f"answerability log-odds below {index.tuning.answerability_threshold:.4f} "
                "(calibrated on this index by rag eval --calibrate)")
    pairs = ", ".join(f"{p} {t:.2f}" for p, t in sorted(model.thresholds.items()))
    return f"answerability log-odds below the threshold of the language pair ({pairs})"
