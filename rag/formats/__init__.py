"""Format readers: one module per file type, each turning a file's content into `Extracted`.

`rag.corpus.read_file` picks the reader by suffix; the readers know nothing of documents,
ids or the index. Dates are normalised by `rag.formats.dates`.
"""

from __future__ import annotations

from dataclasses import dataclass


class NoText(ValueError):
    """A file that is readable but holds no text to index (e.g. a scanned PDF)."""


@dataclass(frozen=True)
class Extracted:
    text: str  # or, for paged formats, "" with `page_texts` set
    title: str = ""
    date: str = ""  # ISO 8601 or ""
    url: str = ""
    author: str = ""
    extractor: str = ""  # which reader produced the text (shown in the build report when it fell back)
    page_texts: tuple[str, ...] = ()  # PDF: the text of each page, in order
    fallback: bool = False  # the preferred reader found nothing and a simpler one was used
