"""PDF files: text per page, in reading order, with Arabic-script text repaired.

Read with pdfplumber (pdfminer.six), chosen over pypdfium2 by measurement on our Persian
and Arabic PDFs (eval/bench_documents.py): pdfium loses ZWNJ and turns every lam-alef
ligature (لا) into "ال", which no later step can tell from a real "ال"; pdfplumber keeps
both and gives each glyph with its position, so that

- lines come in visual order and are put back in reading order (`arabic_pdf.unreverse`),
  a ligature glyph kept whole;
- two columns are found by their gutter and read one after the other (the right one
  first in a right-to-left document);
- lines are joined into paragraphs by the space between them, hyphenated words joined;
- page numbers alone on a line are dropped.

The page texts go to `rag.corpus.make_document`, which keeps where each page starts.
"""

from __future__ import annotations

import io
import re
import statistics
from dataclasses import dataclass

from rag.formats import Extracted, NoText
from rag.formats.arabic_pdf import has_arabic, is_reversed, join_lines, unreverse, unshape
from rag.formats.dates import to_iso

SPACE_GAP = 0.18  # a gap wider than this share of the font size between two glyphs is a space
GUTTER_MIN = 10.0  # points: the least width of an empty band between two columns
_PAGE_NUMBER = re.compile(r"^[\s\-–—|]*(?:page|صفحه|صفحة)?\s*[0-9۰-۹٠-٩]{1,4}(?:\s*/\s*[0-9۰-۹٠-٩]{1,4})?[\s\-–—|]*$",
                          re.I)


@dataclass
class _Line:
    top: float
    bottom: float
    x0: float
    x1: float
    units: list[str]  # the glyphs' texts in visual order, spaces between words

    def text(self) -> str:
        return "".join(self.units)


def _line(chars: list[dict]) -> _Line | None:
    chars = sorted(chars, key=lambda c: c["x0"])
    units: list[str] = []
    prev = None
    for c in chars:
        t = c["text"]
        if prev is not None:
            if t == prev["text"] and abs(c["x0"] - prev["x0"]) < 0.5 and abs(c["top"] - prev["top"]) < 0.5:
                continue  # the same glyph twice (a ligature pdfminer reports once per letter)
            if c["x0"] - prev["x1"] > SPACE_GAP * max(c.get("size") or 10.0, 1.0) and units and units[-1] != " ":
                units.append(" ")
        if t.strip() or t == "\u200c":
            units.append(t)
        elif units and units[-1] != " ":
            units.append(" ")
        prev = c
    while units and units[-1] == " ":
        units.pop()
    if not units:
        return None
    return _Line(min(c["top"] for c in chars), max(c["bottom"] for c in chars), chars[0]["x0"],
                 max(c["x1"] for c in chars), units)


def _rows(page) -> list[list[dict]]:
    """The page's characters grouped into rows (one row may cross several columns)."""
    return [r["chars"] for r in page.extract_text_lines(return_chars=True, strip=False) if r["chars"]]


def _gutter(rows: list[list[dict]], width: float) -> float | None:
    """The x of an empty band between two columns, or None for one column."""
    if len(rows) < 4:
        return None
    step = 2.0
    lo, hi = int(width * 0.3 / step), int(width * 0.7 / step)
    best, best_x = None, None
    for b in range(lo, hi):
        x0, x1 = b * step - GUTTER_MIN / 2, b * step + GUTTER_MIN / 2
        crossing = sum(any(c["x0"] < x1 and c["x1"] > x0 for c in r) for r in rows)
        both = sum(any(c["x1"] <= x0 for c in r) and any(c["x0"] >= x1 for c in r) for r in rows)
        if both >= 3 and crossing <= 0.25 * len(rows) and (best is None or crossing < best):
            best, best_x = crossing, b * step
    return best_x


def _ordered_lines(page, rtl: bool) -> list[list[_Line]]:
    """The page's lines as blocks in reading order (a column is a block)."""
    rows = _rows(page)
    gutter = _gutter(rows, float(page.width))
    if gutter is None:
        return [[ln for ln in (_line(r) for r in rows) if ln]]
    blocks: list[list[_Line]] = []
    left: list[_Line] = []
    right: list[_Line] = []

    def flush() -> None:
        for col in ((right, left) if rtl else (left, right)):
            if col:
                blocks.append(list(col))
                col.clear()

    for r in rows:
        if any(c["x0"] < gutter + GUTTER_MIN / 2 and c["x1"] > gutter - GUTTER_MIN / 2 for c in r):
            flush()  # a full-width line (a title): the columns above it are done
            ln = _line(r)
            if ln:
                blocks.append([ln])
            continue
        for side, chars in ((left, [c for c in r if c["x1"] <= gutter]), (right, [c for c in r if c["x0"] >= gutter])):
            ln = _line(chars) if chars else None
            if ln:
                side.append(ln)
    flush()
    return blocks


def _paragraphs(block: list[_Line], texts: list[str]) -> list[str]:
    """Lines of a block → paragraphs, split where the space between two lines is larger than usual."""
    gaps = [b.top - a.bottom for a, b in zip(block, block[1:], strict=False)]
    usual = statistics.median(gaps) if gaps else 0.0
    height = statistics.median([ln.bottom - ln.top for ln in block]) if block else 0.0
    paras: list[list[str]] = [[]]
    for i, text in enumerate(texts):
        if i and gaps[i - 1] > usual + 0.35 * height:
            paras.append([])
        paras[-1].append(text)
    return [p for p in (join_lines(lines) for lines in paras) if p]


def _glyph_text(line: _Line, table: dict[str, str]) -> str:
    """The line as a string in which each multi-letter glyph (a ligature) is one stand-in character."""
    out = []
    for u in line.units:
        if len(u) > 1:
            key = chr(0xE000 + len(table))
            table[key] = u
            out.append(key)
        else:
            out.append(u)
    return "".join(out)


def _restore(text: str, table: dict[str, str]) -> str:
    return "".join(table.get(ch, ch) for ch in text)


def extract(data: bytes) -> Extracted:
    import pdfplumber

    with pdfplumber.open(io.BytesIO(data)) as pdf:
        meta = pdf.metadata or {}
        if not any(p.chars for p in pdf.pages):
            raise NoText("this PDF has no text layer (scanned pages or images only): run OCR on it first")
        sample = "".join(c["text"] for p in pdf.pages[:3] for c in p.chars[:2000])
        rtl = sum(has_arabic(ch) for ch in sample) > 0.3 * max(1, sum(ch.isalpha() for ch in sample))
        pages = [_ordered_lines(p, rtl) for p in pdf.pages]
    table: dict[str, str] = {}
    raw = [[[unshape(_glyph_text(ln, table)) for ln in block] for block in blocks] for blocks in pages]
    flip = is_reversed([_restore(t, table) for blocks in raw for block in blocks for t in block])
    page_texts = []
    for blocks, texts in zip(pages, raw, strict=True):
        paras: list[str] = []
        for block, lines in zip(blocks, texts, strict=True):
            fixed = [_restore(unreverse(t) if flip and has_arabic(t) else t, table) for t in lines]
            keep = [(ln, t) for ln, t in zip(block, fixed, strict=True) if not _PAGE_NUMBER.match(t)]
            paras.extend(_paragraphs([ln for ln, _ in keep], [t for _, t in keep]))
        page_texts.append("\n".join(paras))
    title = str(meta.get("Title") or "").strip()
    date = to_iso(meta.get("CreationDate")) or to_iso(meta.get("ModDate"))
    return Extracted("", title=title, date=date, author=str(meta.get("Author") or "").strip(),
                     extractor="pdfplumber", page_texts=tuple(page_texts))


def extract_pdfium(data: bytes) -> list[str]:
    """Page texts by pypdfium2 with the same Arabic-script repair, for the benchmark's comparison."""
    import pypdfium2 as pdfium

    from rag.formats.arabic_pdf import repair_lines

    pdf = pdfium.PdfDocument(data)
    try:
        pages = [pdf[i].get_textpage().get_text_range().replace("\r\n", "\n").split("\n") for i in range(len(pdf))]
    finally:
        pdf.close()
    flip = is_reversed([unshape(line) for p in pages for line in p])
    return ["\n".join(repair_lines(p, flip)) for p in pages]
