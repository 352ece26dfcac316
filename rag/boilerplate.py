"""Site furniture in plain text: short lines repeated across many documents of a corpus
("نظر شما", "ارسال نظر", "All rights reserved") are dropped from what is indexed.

The rule: a line of at most MAX_CHARS characters (after normalisation: rag.text.normalize,
white space collapsed) that occurs in at least max(MIN_DOCS, MIN_SHARE × documents)
documents. A line found in one or two documents is never dropped, whatever the corpus.
Offsets are taken after the drop (the document's text is what is cited); page offsets
are moved with it. Lines longer than RAW_CHARS as written are never normalised to be
counted (normalisation removes diacritics, tatweel, ZWNJ and repeated spaces, never three
quarters of a line): on a corpus of 30k articles that is most of this module's cost.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from dataclasses import dataclass, replace

from rag.document import Document, doc_id
from rag.text import normalize

MIN_DOCS = 3
MIN_SHARE = 0.02
MAX_CHARS = 80
RAW_CHARS = 4 * MAX_CHARS


@dataclass(frozen=True)
class BoilerplateReport:
    threshold: int  # documents a line must occur in to be dropped
    documents: int
    lines: dict[str, int]  # a dropped line (as first seen) -> documents it occurred in
    changed: int  # documents that lost at least one line

    def note(self) -> str:
        rule = (f"lines of ≤ {MAX_CHARS} characters found in ≥ {self.threshold} of {self.documents} documents "
                f"(max({MIN_DOCS}, {MIN_SHARE:.0%} of the documents)) are dropped")
        if not self.lines:
            return f"boilerplate: none ({rule})"
        shown = ", ".join(f"«{line}» ({n})" for line, n in sorted(self.lines.items(), key=lambda x: -x[1])[:8])
        more = f" and {len(self.lines) - 8} more" if len(self.lines) > 8 else ""
        return (f"boilerplate: dropped {len(self.lines)} repeated line(s) from {self.changed} document(s): "
                f"{shown}{more} ({rule})")


def _key(line: str) -> str:
    return " ".join(normalize(line).split())


def threshold(n_docs: int) -> int:
    return max(MIN_DOCS, math.ceil(MIN_SHARE * n_docs))


def remove_boilerplate(docs: list[Document]) -> tuple[list[Document], BoilerplateReport]:
    """The documents without the lines repeated across them (see the module's rule)."""
    t = threshold(len(docs))
    counts: Counter[str] = Counter()
    first_seen: dict[str, str] = {}
    for d in docs:
        keys = set()
        for line in d.text.split("\n"):
            if len(line) > RAW_CHARS:
                continue
            k = _key(line)
            if k and len(k) <= MAX_CHARS and any(ch.isalnum() for ch in k):
                keys.add(k)
                first_seen.setdefault(k, line.strip())
        counts.update(keys)
    drop = {k for k, n in counts.items() if n >= t}
    if not drop:
        return docs, BoilerplateReport(t, len(docs), {}, 0)
    out, changed = [], 0
    for d in docs:
        new = _without(d, drop)
        changed += new is not d
        out.append(new)
    return out, BoilerplateReport(t, len(docs), {first_seen[k]: counts[k] for k in drop}, changed)


def _without(d: Document, drop: set[str]) -> Document:
    kept: list[str] = []
    removed: list[tuple[int, int]] = []  # (offset in the old text, characters removed there)
    pos = 0
    for line in d.text.split("\n"):
        if len(line) <= RAW_CHARS and _key(line) in drop:
            removed.append((pos, len(line) + 1))
        else:
            kept.append(line)
        pos += len(line) + 1
    if not removed:
        return d
    text = "\n".join(kept).strip("\n")
    if not any(ch.isalnum() for ch in text):
        return d  # nothing but furniture: keep it as it was rather than lose the document
    lead = len("\n".join(kept)) - len("\n".join(kept).lstrip("\n"))
    starts = [r[0] for r in removed]
    cum = [0]
    for _, n in removed:
        cum.append(cum[-1] + n)

    def moved(offset: int) -> int:
        i = bisect.bisect_left(starts, offset)  # lines removed before the offset
        return max(0, min(len(text), offset - cum[i] - lead))

    new_id = doc_id(text) if d.id == doc_id(d.text) else d.id  # an id a .jsonl record gave is kept
    return replace(d, id=new_id, text=text, pages=tuple(moved(p) for p in d.pages))
