"""Passages with exact character offsets, split on paragraph and sentence boundaries.

langchain-text-splitters does the recursive splitting; this module only maps its
pieces back to offsets so that `document.text[p.start:p.end] == p.text` always holds.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from rag.corpus import Document

# most to least preferred cut: paragraph, line, sentence end (. ! ? ؟ ؛ …), clause
# (، ; :), word; never inside a word unless a single "word" exceeds the chunk size
SEPARATORS = [
    r"\n\s*\n",
    r"\n",
    r"(?<=[.!?؟؛…])[\"'»”’)\]]*\s+",
    r"(?<=[،,;:])\s+",
    r"\s+",
    "",
]


@dataclass(frozen=True)
class Passage:
    id: str
    doc_id: str
    start: int
    end: int
    text: str

    def to_dict(self) -> dict:
        return asdict(self)


def passage_id(doc_id: str, start: int, end: int) -> str:
    return hashlib.sha256(f"{doc_id}:{start}:{end}".encode()).hexdigest()[:16]


def _splitter(chunk_size: int, chunk_overlap: int) -> RecursiveCharacterTextSplitter:
    return RecursiveCharacterTextSplitter(
        separators=SEPARATORS,
        is_separator_regex=True,
        keep_separator="end",
        strip_whitespace=False,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
    )


def chunk(doc: Document, chunk_size: int = 800, chunk_overlap: int = 0) -> list[Passage]:
    """The document's passages in order; each is a verbatim slice of doc.text."""
    text = doc.text
    passages: list[Passage] = []
    cursor = 0
    for piece in _splitter(chunk_size, chunk_overlap).split_text(text):
        start = text.find(piece, cursor)
        if start < 0:  # cannot happen with strip_whitespace=False; guard the invariant
            raise AssertionError(f"chunk not found in document {doc.id}")
        end = start + len(piece)
        cursor = start + 1
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start and any(ch.isalnum() for ch in text[start:end]):
            passages.append(Passage(passage_id(doc.id, start, end), doc.id, start, end, text[start:end]))
    return passages
