"""TEMPORARY stand-in for the lead's rag/conversation.py (same API; reads every question
on its own). The ui branch deletes it when it merges main, where the real module lives."""

from __future__ import annotations

from dataclasses import dataclass, replace

from rag.answer import Answer, answer


@dataclass(frozen=True)
class Context:
    question: str
    query: str
    doc_ids: tuple[str, ...]
    answer: str = ""


@dataclass(frozen=True)
class Reply:
    question: str
    answer: Answer
    reading: str
    query: str
    other: Answer | None
    other_query: str | None
    previous: str | None

    def context(self) -> Context:
        a = self.answer
        return Context(self.question, self.query, tuple(dict.fromkeys(c.doc_id for c in a.citations)),
                       "" if a.abstained else " ".join(a.sentences))

    def swapped(self) -> Reply:
        if self.other is None:
            return self
        return replace(self, answer=self.other, other=self.answer, query=self.other_query or self.question,
                       other_query=self.query, reading="alone" if self.reading == "in-context" else "in-context")


def reply(index, embedder, question: str, previous: Context | None, settings, mode=None, k=None) -> Reply:
    alone = answer(index, embedder, question, settings, mode=mode, k=k)
    if previous is None:
        return Reply(question, alone, "alone", question, None, None, None)
    joined = f"{previous.query} {question}"
    other = answer(index, embedder, joined, settings, mode=mode, k=k)
    return Reply(question, alone, "alone", question, other, joined, previous.question)
