"""Chat turns: what one question and its answer look like to the app.

Whether a question follows up on the previous one is decided by the library
(`rag.conversation.reply` answers both readings and keeps the better-supported one); the
app keeps both readings of every turn as `Turn`s in an `Exchange`, so that taking a turn
the other way costs nothing and survives reruns. A `Turn` holds everything needed to
show an answer again (sentences, snippets with their highlight offsets, dates, pages),
so the chat history stays readable after a re-index.
"""

from __future__ import annotations

from dataclasses import dataclass

from rag.answer import NO_ANSWER
from rag.conversation import Context, Reply
from rag.index import Index
from rag.small_talk import SMALL_TALK_REPLY
from rag.text import detect_lang

READ_ALONE, READ_IN_CONTEXT = "alone", "in-context"


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
    date: str = ""  # the document's date (ISO), "" when unknown
    page: int | None = None  # the page the span starts on, for paged documents (PDF)


@dataclass(frozen=True)
class Turn:
    """One reading of one question, as shown."""

    question: str
    query: str  # what this reading searched
    reading: str  # READ_ALONE or READ_IN_CONTEXT
    previous: str | None  # the previous question (None on a first turn)
    context: Context | None  # what the next question may lean on when this reading is kept (None: nothing)
    abstained: bool
    message: str  # shown instead of sentences when abstained
    sentences: tuple[tuple[int, str], ...]  # (n, sentence)
    snippets: tuple[Snippet, ...]
    mode: str
    timings_ms: dict
    more: tuple[Snippet, ...] = ()  # other retrieved passages, one click away (answered turns)
    source_langs: tuple[str, ...] = ()  # the languages of the sources the question names, which it kept to


@dataclass(frozen=True)
class Exchange:
    """A question with the reading shown and the other one (None on a first turn)."""

    shown: Turn
    other: Turn | None = None

    def swapped(self) -> Exchange:
        """The same question read the other way; the next question then leans on that reading."""
        return self if self.other is None else Exchange(self.other, self.shown)


def _page(doc, offset: int) -> int | None:
    page_at = getattr(doc, "page_at", None)  # paged documents (PDF) only
    return page_at(offset) if callable(page_at) else None


def make_turn(reply: Reply, index: Index, closest: int = 3, more: int = 3, ui_lang: str = "en") -> Turn:
    """The Turn for the kept reading of a reply, with passages, titles and dates taken from
    the index it came from. An abstention or small-talk reply is in the question's language,
    or in the interface language (`ui_lang`) when the message has none ("👍", "123")."""
    ans = reply.answer
    snippets = []
    if not ans.abstained:
        for c in ans.citations:
            doc = index.documents.get(c.doc_id)
            if doc is None:  # the index changed under the answer: show the sentence alone
                snippets.append(Snippet(c.n, c.doc_id, c.title, c.source, c.text, 0, len(c.text), c.start, c.end))
                continue
            passage = doc.text[c.passage_start:c.passage_end]
            snippets.append(Snippet(c.n, c.doc_id, doc.title, doc.source, passage,
                                    c.start - c.passage_start, c.end - c.passage_start, c.start, c.end,
                                    doc.date, _page(doc, c.start)))
    else:
        for h in ans.hits[:closest]:
            doc = index.documents.get(h.passage.doc_id)
            if doc is not None:
                snippets.append(Snippet(0, doc.id, doc.title, doc.source, h.passage.text, 0, 0,
                                        h.passage.start, h.passage.end, doc.date, _page(doc, h.passage.start)))
    others = []  # the answer is short: the other passages found stay one click away
    if not ans.abstained:
        cited = {c.passage_id for c in ans.citations}
        for h in ans.hits:
            doc = index.documents.get(h.passage.doc_id)
            if doc is not None and h.passage.id not in cited and len(others) < more:
                others.append(Snippet(0, doc.id, doc.title, doc.source, h.passage.text, 0, 0,
                                      h.passage.start, h.passage.end, doc.date, _page(doc, h.passage.start)))
    lang = detect_lang(reply.question)
    replies = SMALL_TALK_REPLY if ans.small_talk else NO_ANSWER
    message = replies.get(lang, replies.get(ui_lang, replies["en"]))
    return Turn(reply.question, reply.query, reply.reading, reply.previous, reply.context(), ans.abstained, message,
                tuple((c.n, c.text) for c in ans.citations), tuple(snippets), ans.mode, dict(ans.timings_ms),
                tuple(others), ans.source_langs)


def make_exchange(reply: Reply, index: Index, ui_lang: str = "en") -> Exchange:
    """Both readings of a reply as Turns (the other one only after a first turn)."""
    other = make_turn(reply.swapped(), index, ui_lang=ui_lang) if reply.other is not None else None
    return Exchange(make_turn(reply, index, ui_lang=ui_lang), other)


def context_of(exchanges: list[Exchange]) -> Context | None:
    """What the next question may lean on: the last exchange's reading as shown."""
    return exchanges[-1].shown.context if exchanges else None
