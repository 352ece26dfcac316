"""Distractors: extra documents for an evaluation corpus, from a corpus folder or news JSON."""

from __future__ import annotations

import json
import random
import zipfile
from pathlib import Path

from rag.corpus import Document, load_corpus, make_document, read_file

_NEWS_SUFFIXES = (".json", ".zip")


def load_distractors(path: Path | str, limit: int | None = None, seed: int = 0) -> list[Document]:
    """Extra documents: a corpus folder, or news JSON lists (.json files, or .zip files of them).

    News articles are `{title, abstract?, paragraphs[] | content | text, link | url, date...}`
    (fars_news and saudinewsnet). A folder holding .json/.zip files is read as news and
    its other files (README, LICENSE) are ignored. With `limit`, a random sample (fixed
    by `seed`) of that many documents is returned.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"distractors not found: {path}")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        news = [p for p in files if p.suffix.lower() in _NEWS_SUFFIXES]
        if not news:
            docs = load_corpus(path, path.parent).documents
            return _sample(docs, limit, seed)
        files = news
    else:
        files = [path]
    raw: list[tuple[str, dict]] = []
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
    chosen = _sample(raw, limit, seed)
    out: dict[str, Document] = {}
    for source, rec in chosen:
        doc = rec.get("_doc") or _article_document(rec, source)
        if doc is not None:
            out.setdefault(doc.id, doc)
    return list(out.values())


def _sample(values: list, limit: int | None, seed: int) -> list:
    if limit is None or limit >= len(values):
        return list(values)
    keep = sorted(random.Random(seed).sample(range(len(values)), limit))
    return [values[i] for i in keep]


def _articles(data: bytes, label: str) -> list[tuple[str, dict]]:
    try:
        recs = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"distractor file {label} is not UTF-8 JSON ({e})") from None
    if not isinstance(recs, list) or not all(isinstance(r, dict) for r in recs):
        raise ValueError(f"distractor file {label}: expected a JSON list of article objects")
    return [(f"{label}#{i}", r) for i, r in enumerate(recs)]


def _article_document(rec: dict, source: str) -> Document | None:
    title = " ".join(str(rec.get("title") or "").split())
    parts = [title] if title else []
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
