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


def _starts(text: str, pieces: list[str], overlap: int) -> list[int]:
    """Where each piece lies in text. The splitter keeps every character, so the first piece
    starts at 0, the last one ends the text, and each next piece starts after the previous
    one's start, where it ended or at most `overlap` characters earlier, and runs past that
    end. Text that repeats itself within the overlap can let a piece fit more than one
    place: the search takes the earliest (the splitter keeps as much overlap as it can) and
    steps back when a later piece then fits nowhere or the last misses the text's end."""

    def window(k: int, prev_start: int, prev_end: int) -> list[int]:
        """[lo, hi): piece k lies in text[lo:hi] when it follows a piece at prev_start:prev_end."""
        size = len(pieces[k])
        return [max(prev_start + 1, prev_end - overlap, prev_end - size + 1), prev_end + size]

    starts: list[int] = []
    windows = [window(0, -1, 0)] if pieces else []  # windows[k]: where piece k may still be tried
    tried: set[tuple[int, int]] = set()  # (piece, start) already placed; if the search is back, a dead end
    while len(starts) < len(pieces):
        k = len(starts)
        start = text.find(pieces[k], *windows[k])
        if start < 0:  # piece k fits nowhere after piece k-1 as placed: move piece k-1
            if not starts:  # cannot happen with strip_whitespace=False; guard the invariant
                raise AssertionError("the splitter's pieces do not tile the text")
            windows.pop()
            starts.pop()
            continue
        windows[k][0] = start + 1
        end = start + len(pieces[k])
        if (k, start) in tried or (k == len(pieces) - 1 and end != len(text)):
            continue
        tried.add((k, start))
        starts.append(start)
        if k + 1 < len(pieces):
            windows.append(window(k + 1, start, end))
    return starts


def chunk(doc: Document, chunk_size: int = 800, chunk_overlap: int = 0) -> list[Passage]:
    """The document's passages in order; each is a verbatim slice of doc.text."""
    text = doc.text
    passages: list[Passage] = []
    pieces = _splitter(chunk_size, chunk_overlap).split_text(text)
    for piece, start in zip(pieces, _starts(text, pieces, chunk_overlap), strict=True):
        end = start + len(piece)
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end <= start or not any(ch.isalnum() for ch in text[start:end]):
            continue  # no word in it
        # with overlap, a piece may differ from the previous one only by whitespace at one end
        if passages and end <= passages[-1].end:
            continue  # it adds nothing to the previous passage
        if passages and start == passages[-1].start:
            passages.pop()  # it is the previous passage, extended
        passages.append(Passage(passage_id(doc.id, start, end), doc.id, start, end, text[start:end]))
    return passages
