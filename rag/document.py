"""What every stage passes around: a document as read from the corpus, and what was skipped."""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import asdict, dataclass, field


def doc_id(text: str) -> str:
    """A document's id: a hash of its text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Document:
    id: str  # content hash of the text
    source: str  # path relative to the project root (jsonl: "path#line")
    title: str
    text: str  # what is shown and cited; offsets refer to this
    lang: str
    url: str = ""
    date: str = ""  # ISO 8601 (YYYY-MM-DD or a full datetime), "" when unknown
    pages: tuple[int, ...] = ()  # paged formats (PDF): the offset in `text` where each page starts
    extractor: str = ""  # the reader that produced `text` (e.g. trafilatura, pdfium)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pages", tuple(int(p) for p in self.pages))

    def page_at(self, offset: int) -> int | None:
        """The page (from 1) holding character `offset` of the text; None for unpaged documents."""
        if not self.pages:
            return None
        return max(1, bisect.bisect_right(self.pages, offset))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["pages"] = list(self.pages)
        return d


@dataclass(frozen=True)
class Skipped:
    source: str
    reason: str


@dataclass(frozen=True)
class CorpusLoad:
    documents: list[Document] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # for the build report: fallbacks, boilerplate dropped
