"""RSS and Atom feeds: each item becomes a document (its linked page's article, else the
item's own text), with its link and date, stored as one line of `corpus/feeds/<feed>.jsonl`.

Items whose link is already in the corpus (a feed file, or the index's documents) are
skipped, so adding a feed again adds only what is new. `rag add FEED` then updates the index.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from rag.formats.dates import to_iso
from rag.formats.html import extract, visible_text

log = logging.getLogger(__name__)
TIMEOUT_S = 20
MAX_BYTES = 20 * 2**20
USER_AGENT = "rag-feed-reader/0.2 (+local)"


@dataclass(frozen=True)
class FeedReport:
    feed: str
    path: Path  # the .jsonl file the items were added to
    added: list[str] = field(default_factory=list)  # links added
    known: list[str] = field(default_factory=list)  # links already in the corpus
    from_feed: list[str] = field(default_factory=list)  # links whose page could not be read: the item's text was used
    empty: list[str] = field(default_factory=list)  # items without any text

    def to_dict(self) -> dict:
        return {"feed": self.feed, "path": str(self.path), "added": self.added, "known": self.known,
                "from_feed": self.from_feed, "empty": self.empty}


def fetch(url: str, max_bytes: int = MAX_BYTES) -> bytes:
    """The body of an http(s) URL (OSError/ValueError on failure)."""
    if not re.match(r"https?://", url, re.I):
        raise ValueError(f"not an http(s) URL: {url}")
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as r:  # noqa: S310 - http(s) only, checked above
        data = r.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{url} is larger than {max_bytes // 2**20} MiB")
    return data


def _slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text).strip("._")[:80] or "feed"


def _known_links(corpus_dir: Path, index_dir: Path | None) -> set[str]:
    links: set[str] = set()
    for f in sorted((corpus_dir / "feeds").glob("*.jsonl")) if (corpus_dir / "feeds").is_dir() else []:
        for line in f.read_text("utf-8").splitlines():
            try:
                links.add(json.loads(line).get("url") or "")
            except (json.JSONDecodeError, AttributeError):
                continue
    docs = (index_dir / "current" / "documents.jsonl") if index_dir else None
    if docs is not None and docs.is_file():
        for line in docs.read_text("utf-8").splitlines():
            try:
                links.add(json.loads(line).get("url") or "")
            except (json.JSONDecodeError, AttributeError):
                continue
    links.discard("")
    return links


def _item_text(entry) -> str:
    parts = [c.get("value", "") for c in entry.get("content", []) or []] or [entry.get("summary", "")]
    return "\n".join(visible_text(p)[1] if "<" in p else p for p in parts if p).strip()


def add_feed(feed: str, corpus_dir: Path, index_dir: Path | None = None) -> FeedReport:
    """Add the new items of a feed (a file or an http(s) URL) to corpus_dir/feeds/."""
    import feedparser

    corpus_dir = Path(corpus_dir)
    data = fetch(feed) if re.match(r"https?://", feed, re.I) else Path(feed).read_bytes()
    parsed = feedparser.parse(data)
    if parsed.bozo and not parsed.entries:
        raise ValueError(f"{feed} is not an RSS or Atom feed ({parsed.get('bozo_exception')})")
    name = _slug(parsed.feed.get("title") or Path(feed.rstrip("/")).name)
    path = corpus_dir / "feeds" / f"{name}.jsonl"
    known = _known_links(corpus_dir, index_dir)
    report = FeedReport(feed, path)
    records = []
    for entry in parsed.entries:
        link = entry.get("link") or entry.get("id") or ""
        if link and link in known:
            report.known.append(link)
            continue
        title = " ".join((entry.get("title") or "").split())
        date = to_iso(entry.get("published_parsed") or entry.get("updated_parsed")) or to_iso(entry.get("published"))
        text = ""
        if re.match(r"https?://", link, re.I):
            try:
                page = extract(fetch(link).decode("utf-8", errors="replace"))
                text = page.text
                date = date or page.date
                title = title or page.title
            except (OSError, ValueError) as e:
                log.info("could not read %s (%s): using the feed's own text", link, e)
        if not text:
            text = _item_text(entry)
            if link:
                report.from_feed.append(link)
        if not any(ch.isalnum() for ch in text):
            report.empty.append(link or title)
            continue
        records.append({"title": title, "url": link, "date": date, "text": text})
        report.added.append(link or title)
        known.add(link)
    if records:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return report
