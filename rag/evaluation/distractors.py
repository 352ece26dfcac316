"""Distractors: extra documents for an evaluation corpus, from a corpus folder or news JSON."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from rag.chunking import chunk
from rag.corpus import Document, load_corpus, make_document, read_file
from rag.evaluation.sampling import sample

_NEWS_SUFFIXES = (".json", ".zip")


def load_distractors(path: Path | str, limit: int | None = None, seed: int = 0, lead: bool = False,
                     min_chars: int = 0) -> list[Document]:
    """Extra documents: a corpus folder, or news JSON lists (.json files, or .zip files of them).

    News articles are `{title, abstract?, paragraphs[] | content | text, link | url, date...}`
    (fars_news and saudinewsnet). A folder holding .json/.zip files is read as news and
    its other files (README, LICENSE) are ignored. With `limit`, a random sample (fixed
    by `seed`) of that many documents is returned.

    With `lead`, each document is cut to its first passage (rag.chunking's default size;
    for an article, the first passage of its abstract and body: the title stays its title
    but is not in the text). Documents shorter than `min_chars` characters are left out;
    with `limit`, others are drawn in their place (as for articles without text).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"distractors not found: {path}")
    raw: list[tuple[str, dict]] = []
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        news = [p for p in files if p.suffix.lower() in _NEWS_SUFFIXES]
        if not news:
            raw = [(d.source, {"_doc": d}) for d in load_corpus(path, path.parent).documents]
        files = news
    else:
        files = [path]
    for f in files:
        label = f.relative_to(path.parent).as_posix()
        if f.suffix.lower() == ".zip":
            with zipfile.ZipFile(f) as z:
                for name in sorted(n for n in z.namelist() if n.lower().endswith(".json")):
                    raw.extend(_articles(z.read(name), f"{label}/{name}"))
        elif f.suffix.lower() == ".json":
            raw.extend(_articles(f.read_bytes(), label))
        else:
            docs, _ = read_file(f, label)
            raw.extend((d.source, {"_doc": d}) for d in docs)
    seen: set[str] = set()

    def keep(item: tuple[str, dict]) -> Document | None:
        source, rec = item
        doc = rec.get("_doc") or _article_document(rec, source, with_title=not lead)
        if doc is not None and lead:
            doc = _first_passage(doc)
        if doc is None or len(doc.text) < min_chars or doc.id in seen:
            return None
        seen.add(doc.id)
        return doc

    return sample(raw, limit, seed, keep)


def _first_passage(doc: Document) -> Document | None:
    passages = chunk(doc)
    return make_document(passages[0].text, doc.source, title=doc.title, url=doc.url, date=doc.date) if passages else None


def _articles(data: bytes, label: str) -> list[tuple[str, dict]]:
    try:
        recs = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"distractor file {label} is not UTF-8 JSON ({e})") from None
    if not isinstance(recs, list) or not all(isinstance(r, dict) for r in recs):
        raise ValueError(f"distractor file {label}: expected a JSON list of article objects")
    return [(f"{label}#{i}", r) for i, r in enumerate(recs)]


def _article_document(rec: dict, source: str, with_title: bool = True) -> Document | None:
    title = " ".join(str(rec.get("title") or "").split())
    parts = [title] if title and with_title else []
    if rec.get("abstract"):
        parts.append(str(rec["abstract"]))
    body = rec.get("paragraphs") or rec.get("content") or rec.get("text") or ""
    if isinstance(body, list):
        parts.extend(str(p) for p in body)
    else:
        parts.append(str(body))
    return make_document("\n\n".join(p for p in parts if p.strip()), source, title=title,
                         url=str(rec.get("link") or rec.get("url") or ""),
                         date=str(rec.get("date") or rec.get("date_extracted") or ""))
