"""Gold questions: our JSONL format (`load_gold`) and SQuAD v1.1/v2.0 files (`load_squad`,
which also returns the contexts as documents to index)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from rag.corpus import SUFFIXES, Document, make_document, read_file
from rag.evaluation.sampling import sample
from rag.text import detect_lang

LANGS = ("fa", "ar", "en", "other")
GOLD_FIELDS = ("id", "question", "lang", "answers", "sources", "notes")
REQUIRED_FIELDS = ("id", "question", "lang", "answers", "sources")


class GoldError(ValueError):
    """A gold file that cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class GoldItem:
    id: str
    question: str
    lang: str
    answers: tuple[str, ...]  # empty when the question is unanswerable
    sources: tuple[str, ...]  # documents that answer it, as written in the gold file
    doc_ids: tuple[str, ...]  # the ids of those documents (what retrieval must find)
    notes: str = ""
    origin: str = ""  # "file line n": where it was read, for messages

    @property
    def answerable(self) -> bool:
        return bool(self.answers)

    def to_dict(self) -> dict:
        return {"id": self.id, "question": self.question, "lang": self.lang, "answers": list(self.answers),
                "sources": list(self.sources), "notes": self.notes}


def resolve_source(source: str, project_root: Path) -> list[Document]:
    """The documents a gold `sources` entry names: a corpus file, or `file.jsonl#line`."""
    file_part, _, line = source.partition("#")
    path = Path(project_root) / file_part
    if not path.is_file():
        raise FileNotFoundError(f"source {source!r} not found (no file {path})")
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"source {source!r} is not a corpus file type ({' '.join(SUFFIXES)})")
    docs, skipped = read_file(path, file_part)
    if line:
        docs = [d for d in docs if d.source == source]
    if not docs:
        reason = "; ".join(s.reason for s in skipped if not line or s.source == source)
        raise ValueError(f"source {source!r} holds no readable document" + (f" ({reason})" if reason else ""))
    return docs


def jsonl_records(path: Path, what: str) -> list[tuple[str, object]]:
    """(where, record) for each non-empty line of a JSONL file ("file line n"); GoldError
    for a file that is not UTF-8 or a line that is not JSON."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        text = path.read_text("utf-8-sig")
    except UnicodeDecodeError as e:
        raise GoldError(f"{path}: not UTF-8 text (bad byte at offset {e.start})") from e
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {n}"
        try:
            out.append((where, json.loads(line)))
        except json.JSONDecodeError as e:
            raise GoldError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
    return out


def unique_ids(entries: list[tuple[str, object]]) -> list:
    """The objects (each with an `id`) in order; GoldError at the second of two with one id."""
    first: dict[str, str] = {}
    for where, obj in entries:
        if obj.id in first:
            raise GoldError(f"{where}: duplicate id {obj.id!r} (also on line {first[obj.id]})")
        first[obj.id] = where.rpartition(" line ")[2]
    return [obj for _, obj in entries]


def load_gold(path: Path | str, project_root: Path | str) -> list[GoldItem]:
    """Questions of a gold JSONL file; sources are resolved to document ids under project_root.

    Any bad line (invalid JSON, a missing or unknown field, a wrong type, a duplicate id,
    a source that does not exist) raises GoldError naming the file and the line.
    """
    path = Path(path)
    root = Path(project_root).resolve()
    resolved: dict[str, tuple[str, ...]] = {}
    items = unique_ids([(where, _gold_item(rec, where, root, resolved)) for where, rec in jsonl_records(path, "gold")])
    if not items:
        raise GoldError(f"{path}: no questions (expected one JSON object per line)")
    return items


def _gold_item(rec, where: str, root: Path, resolved: dict[str, tuple[str, ...]]) -> GoldItem:
    if not isinstance(rec, dict):
        raise GoldError(f"{where}: a line must be a JSON object with fields {', '.join(GOLD_FIELDS)}")
    missing = [f for f in REQUIRED_FIELDS if f not in rec]
    if missing:
        raise GoldError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(rec) - set(GOLD_FIELDS))
    if unknown:
        raise GoldError(f"{where}: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(GOLD_FIELDS)})")
    for name in ("id", "question"):
        if not isinstance(rec[name], str) or not rec[name].strip():
            raise GoldError(f"{where}: '{name}' must be a non-empty string")
    if rec["lang"] not in LANGS:
        raise GoldError(f"{where}: 'lang' must be one of {', '.join(LANGS)}, not {rec['lang']!r}")
    for name in ("answers", "sources"):
        value = rec[name]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise GoldError(f"{where}: '{name}' must be a list of non-empty strings ([] when unanswerable)")
    if not isinstance(rec.get("notes", ""), str):
        raise GoldError(f"{where}: 'notes' must be a string")
    answers, sources = tuple(rec["answers"]), tuple(rec["sources"])
    if bool(answers) != bool(sources):
        raise GoldError(f"{where}: 'answers' and 'sources' must both be empty (unanswerable) or both non-empty")
    doc_ids: list[str] = []
    for s in sources:
        if s not in resolved:
            try:
                resolved[s] = tuple(d.id for d in resolve_source(s, root))
            except (OSError, ValueError) as e:
                raise GoldError(f"{where}: {e}") from None
        doc_ids.extend(i for i in resolved[s] if i not in doc_ids)
    return GoldItem(rec["id"], rec["question"], rec["lang"], answers, sources, tuple(doc_ids),
                    rec.get("notes", ""), where)


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def load_squad(path: Path | str, limit: int | None = None, seed: int = 0) -> tuple[list[Document], list[GoldItem]]:
    """The distinct contexts of a SQuAD v1.1/v2.0 file as documents, and its questions.

    Each question's gold document is its context; `is_impossible` questions are
    unanswerable (no answers, no gold document). Identical contexts become one document.
    With `limit`, only a random sample (fixed by `seed`) of that many paragraphs, and
    their questions.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SQuAD file not found: {path}")
    try:
        data = json.loads(path.read_text("utf-8-sig"))
    except json.JSONDecodeError as e:
        raise GoldError(f"{path} line {e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise GoldError(f"{path}: not UTF-8 text (bad byte at offset {e.start})") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise GoldError(f"{path}: not SQuAD JSON (expected an object with a list 'data')")
    paragraphs: list[tuple[str, str, str, dict]] = []  # (where, source, title, paragraph)
    for i, article in enumerate(data["data"]):
        where_a = f"{path} data[{i}]"
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise GoldError(f"{where_a}: an article needs a list 'paragraphs'")
        title = str(article.get("title") or "").replace("_", " ").strip()
        title = "" if _UUID.match(title) else title
        for j, para in enumerate(article["paragraphs"]):
            where_p = f"{where_a}.paragraphs[{j}]"
            if not isinstance(para, dict) or not isinstance(para.get("context"), str) or not isinstance(para.get("qas"), list):
                raise GoldError(f"{where_p}: a paragraph needs a string 'context' and a list 'qas'")
            paragraphs.append((where_p, f"{path.name}#{i}.{j}", title, para))
    docs: dict[str, Document] = {}
    items: list[GoldItem] = []
    first: dict[str, str] = {}
    for where_p, source, title, para in sample(paragraphs, limit, seed):
        doc = make_document(para["context"], source, title=title)
        if doc is None:
            raise GoldError(f"{where_p}: the context has no text")
        doc = docs.setdefault(doc.id, doc)
        for q, qa in enumerate(para["qas"]):
            items.append(_squad_item(qa, f"{where_p}.qas[{q}]", doc))
            if items[-1].id in first:
                raise GoldError(f"{items[-1].origin}: duplicate id {items[-1].id!r} (also at {first[items[-1].id]})")
            first[items[-1].id] = items[-1].origin
    if not items:
        raise GoldError(f"{path}: no questions")
    return list(docs.values()), items


def _squad_item(qa, where: str, doc: Document) -> GoldItem:
    if not isinstance(qa, dict) or "id" not in qa or not isinstance(qa.get("question"), str) or not qa["question"].strip():
        raise GoldError(f"{where}: a question needs an 'id' and a non-empty string 'question'")
    impossible = bool(qa.get("is_impossible", False))
    answers: list[str] = []
    for a in [] if impossible else qa.get("answers") or []:
        if not isinstance(a, dict) or not isinstance(a.get("text"), str):
            raise GoldError(f"{where}: each answer needs a string 'text'")
        if a["text"].strip() and a["text"].strip() not in answers:
            answers.append(a["text"].strip())
    if not impossible and not answers:
        raise GoldError(f"{where}: no answers, and not marked is_impossible")
    lang = detect_lang(qa["question"])
    return GoldItem(str(qa["id"]), qa["question"], lang if lang in LANGS else "other", tuple(answers),
                    (doc.source,) if answers else (), (doc.id,) if answers else (), "", where)
