"""Saved web pages: the article's main text and metadata through trafilatura, else the
page's visible text.

trafilatura sets aside an extraction shorter than its MIN_EXTRACTED_SIZE (250 characters)
for a cruder one when that is longer: the page's paragraphs, or all its text, menus, ads,
related links and comment form included. A short news item is under 250 characters, so the
minimum is lowered to MIN_ARTICLE_CHARS.

trafilatura drops characters it considers non-printable, ZWNJ (U+200C, a letter-level
mark in Persian: "می‌شود") among them; they are swapped for a printable stand-in before
extraction and restored after it.
"""

from __future__ import annotations

import functools
import logging
import re
from html.parser import HTMLParser

from rag.formats import Extracted
from rag.formats.dates import date_line, to_iso

log = logging.getLogger(__name__)

MIN_ARTICLE_CHARS = 100  # the shortest text trafilatura's own extraction is kept at (its default: 250)

# marks trafilatura would drop (ZWNJ, ZWJ, LRM, RLM) -> rare printable stand-ins
_PROTECT = {"\u200c": "\u2e3b", "\u200d": "\u2e3a", "\u200e": "\u2e39", "\u200f": "\u2e38"}
_ENTITIES = re.compile(r"&(?:zwnj|zwj|lrm|rlm|#8204|#8205|#8206|#8207|#x200[cdef]);", re.I)
_ENTITY_CHAR = {"zwnj": "\u200c", "zwj": "\u200d", "lrm": "\u200e", "rlm": "\u200f", "#8204": "\u200c",
                "#8205": "\u200d", "#8206": "\u200e", "#8207": "\u200f", "#x200c": "\u200c", "#x200d": "\u200d",
                "#x200e": "\u200e", "#x200f": "\u200f"}


class _HTMLText(HTMLParser):
    _BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article", "blockquote"}
    _SKIP = {"script", "style", "noscript", "template", "head"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self._in_title = True
        elif tag in self._SKIP:
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        elif tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> tuple[str, str]:
    """(title, text) of an HTML page: all visible text, scripts and styles dropped."""
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).split("\n")]
    return " ".join(parser.title.split()), "\n".join(line for line in lines if line)


def _protect(html: str) -> str | None:
    if any(c in html for c in _PROTECT.values()):
        return None  # the stand-ins occur in the page itself: do not guess
    html = _ENTITIES.sub(lambda m: _ENTITY_CHAR[m[0][1:-1].lower()], html)
    for mark, stand_in in _PROTECT.items():
        html = html.replace(mark, stand_in)
    return html


def _restore(text: str | None) -> str:
    text = text or ""
    for mark, stand_in in _PROTECT.items():
        text = text.replace(stand_in, mark)
    return text


class _DateSpots(HTMLParser):
    """Texts of the elements where pages put their date: <time>, and elements whose class,
    id or itemprop names a date ("date", "time", "publish", "meta")."""

    _HINTS = ("date", "time", "publish", "meta", "byline")
    _VOID = {"br", "img", "input", "meta", "link", "hr", "source", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.spots: list[str] = []
        self._open: list[int | None] = []  # per open element: its spot's index, or None

    def handle_starttag(self, tag, attrs):
        if tag in self._VOID:
            return
        a = dict(attrs)
        if tag == "time" and a.get("datetime"):
            self.spots.append(a["datetime"] or "")
        hint = " ".join(str(a.get(k) or "") for k in ("class", "id", "itemprop")).lower()
        if tag == "time" or any(h in hint for h in self._HINTS):
            self.spots.append("")
            self._open.append(len(self.spots) - 1)
        else:
            self._open.append(None)

    def handle_endtag(self, tag):
        if tag not in self._VOID and self._open:
            self._open.pop()

    def handle_data(self, data):
        for i in self._open:
            if i is not None:
                self.spots[i] += data


def page_date(html: str) -> str:
    """The date in the page's date elements (see _DateSpots), as ISO; "" when none."""
    parser = _DateSpots()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - a malformed page simply has no date here
        return ""
    for spot in parser.spots:
        spot = " ".join(spot.split())
        if spot and len(spot) <= 80:  # a date element, not a whole section that happens to match
            iso = to_iso(spot)
            if iso:
                return iso
    return ""


def _untable(text: str) -> str:
    """trafilatura writes table rows as "| a | b |": one cell per line instead (an old table
    layout puts a whole article in one cell)."""
    out = []
    for line in text.split("\n"):
        if line.startswith("|") and line.rstrip().endswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if all(set(c) <= set("-: ") for c in cells):
                continue  # a separator row
            out.extend(c for c in cells if c)
        else:
            out.append(line)
    return "\n".join(out)


@functools.cache
def _config():
    from trafilatura.settings import use_config

    config = use_config()  # a copy of trafilatura's defaults
    config.set("DEFAULT", "MIN_EXTRACTED_SIZE", str(MIN_ARTICLE_CHARS))
    return config


def headline_date(page_text: str, title: str) -> str:
    """The date of a line of its own just under the headline (`title`) in the page's visible
    text, as ISO; "" when none (see `date_line`)."""
    lines = page_text.split("\n")
    if not title or title not in lines:
        return ""
    return date_line("\n".join(lines[lines.index(title) + 1:]), lines=2)


def extract(html: str) -> Extracted:
    """The article of a saved news page: body text, title, author, date and URL.

    The date: trafilatura's (meta tags, JSON-LD, <time>, URL), else the text of the page's
    date elements (Jalali and Arabic month names read too), else a date line at the top of
    the article or just under its headline in the page. Falls back to the page's visible
    text (`fallback=True`) when trafilatura finds no article."""
    page_title, page_text = visible_text(html)
    protected = _protect(html)
    doc = None
    if protected is not None:
        try:
            import trafilatura

            doc = trafilatura.bare_extraction(protected, with_metadata=True, include_comments=False,
                                              include_tables=True, deduplicate=False, favor_precision=False,
                                              config=_config())
        except Exception as e:  # noqa: BLE001 - a page trafilatura chokes on is still read as visible text
            log.info("trafilatura failed on a page (%s); reading its visible text", e)
            doc = None
    text = _untable(_restore(getattr(doc, "text", None))).strip()
    if not any(ch.isalnum() for ch in text):
        return Extracted(page_text, title=page_title, date=page_date(html) or date_line(page_text),
                         extractor="html visible text", fallback=True)
    title = _restore(getattr(doc, "title", None)) or page_title
    date = (to_iso(getattr(doc, "date", None)) or page_date(html) or date_line(text)
            or headline_date(page_text, title))
    return Extracted(text, title=title, date=date, url=_restore(getattr(doc, "url", None)) or "",
                     author=_restore(getattr(doc, "author", None)) or "", extractor="trafilatura")
