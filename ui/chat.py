"""Chat turns: what one question and its answer look like to the app, and follow-ups.

A `Turn` keeps everything needed to show an answer again (sentences, snippets with
their highlight offsets), so the chat history stays readable after a re-index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.answer import NO_ANSWER, Answer
from rag.index import Index
from rag.text import STOPWORDS, detect_lang, normalize, tokens

# a question opening with one of these continues the previous one
_CONNECTIVES = {normalize(w) for w in (
    "and", "also", "but", "so", "then", "what about", "how about",
    "و", "ولی", "اما", "همچنین", "پس", "بعد", "ثم", "لكن", "كذلك", "وماذا",
)}
# words that point back at something named earlier
_POINTERS = {normalize(w) for w in (
    "it", "its", "they", "them", "their", "he", "she", "him", "her", "his", "this", "that",
    "these", "those", "there", "then",
    "آن", "او", "آنها", "ایشان", "اینها", "آنجا", "وی", "این", "همان", "آنان",
    "هو", "هي", "هم", "ذلك", "تلك", "هذا", "هذه", "هناك", "هما",
)}
_WORD = re.compile(r"\w+", re.UNICODE)


def is_follow_up(question: str) -> bool:
    """A short question that leans on the previous turn ("and how long did it last?").

    Yes when it opens with a connective ("and", "و", Arabic "و" glued to a question
    word as in "وكم"), when it has at most two content words, or when it has at most
    four and a pronoun or demonstrative ("it", "آن", "ذلك").
    """
    words = _WORD.findall(normalize(question))
    if not words:
        return False
    first_two = " ".join(words[:2])
    if words[0] in _CONNECTIVES or first_two in _CONNECTIVES:
        return True
    if words[0].startswith("و") and len(words[0]) > 1 and words[0][1:] in STOPWORDS:
        return True
    content = tokens(question)
    if len(content) <= 2:
        return True
    return len(content) <= 4 and any(w in _POINTERS for w in words)


def retrieval_query(question: str, previous: str | None, max_chars: int = 2000) -> str:
    """What to search for: the question, prefixed by the previous one when it is a follow-up."""
    question = " ".join(question.split())
    if not previous or not is_follow_up(question):
        return question
    joined = f"{' '.join(previous.split())} {question}"
    return joined if len(joined) <= max_chars else question


@dataclass(frozen=True)
class Snippet:
    n: int  # citation number; 0 for a closest passage shown with an abstention
    doc_id: str
    title: str
    source: str
    passage: str
    mark_start: int  # the cited sentence inside `passage` (empty span: nothing marked)
    mark_end: int
    start: int  # the span to mark when the whole document is opened
    end: int


@dataclass(frozen=True)
class Turn:
    question: str
    query: str  # what was searched: the question, or the thread's question + this one
    thread: str  # the standalone question a later follow-up is joined to
    abstained: bool
    message: str  # shown instead of sentences when abstained
    sentences: tuple[tuple[int, str], ...]  # (n, sentence)
    snippets: tuple[Snippet, ...]
    mode: str
    timings_ms: dict


def make_turn(question: str, query: str, thread: str, ans: Answer, index: Index, closest: int = 3) -> Turn:
    """The Turn for an answer, with passages and titles taken from the index it came from."""
    snippets = []
    if not ans.abstained:
        for c in ans.citations:
            doc = index.documents.get(c.doc_id)
            if doc is None:  # the index changed under the answer: show the sentence alone
                snippets.append(Snippet(c.n, c.doc_id, c.title, c.source, c.text, 0, len(c.text), c.start, c.end))
                continue
            passage = doc.text[c.passage_start:c.passage_end]
            snippets.append(Snippet(c.n, c.doc_id, doc.title, doc.source, passage,
                                    c.start - c.passage_start, c.end - c.passage_start, c.start, c.end))
    else:
        for h in ans.hits[:closest]:
            doc = index.documents.get(h.passage.doc_id)
            if doc is not None:
                snippets.append(Snippet(0, doc.id, doc.title, doc.source, h.passage.text, 0, 0,
                                        h.passage.start, h.passage.end))
    lang = detect_lang(question)
    message = NO_ANSWER.get(lang, NO_ANSWER.get(ans.lang, NO_ANSWER["en"]))
    return Turn(question, query, thread, ans.abstained, message,
                tuple((c.n, c.text) for c in ans.citations), tuple(snippets), ans.mode, dict(ans.timings_ms))


def next_thread(question: str, previous: Turn | None) -> str:
    """The thread a new question belongs to: the previous turn's when it is a follow-up."""
    if previous is not None and is_follow_up(question):
        return previous.thread
    return " ".join(question.split())
