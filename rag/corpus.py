"""Reading a corpus folder into Documents: formats, encodings, de-duplication, ids.

`load_corpus(dir)` never raises for a bad file: it reports the file by name in
`CorpusLoad.skipped` and goes on, so one broken file loses nothing else.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from rag.document import CorpusLoad, Document, Skipped, doc_id  # noqa: F401 — as callers import them
from rag.formats import Extracted, NoText
from rag.formats.dates import date_line, to_iso
from rag.formats.html import visible_text
from rag.progress import OnProgress
from rag.text import detect_lang, normalize

SUFFIXES = (".txt", ".md", ".html", ".htm", ".jsonl", ".pdf", ".docx")
BINARY_READERS = {".pdf": "rag.formats.pdf", ".docx": "rag.formats.docx"}  # suffix -> module with extract(bytes)
MAX_FILE_BYTES = 20 * 1024 * 1024  # per-file limit when no settings are given (Settings.max_file_mb)


class UnreadableFile(ValueError):
    """A file that cannot be decoded or is not text."""


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 text without a BOM: one byte of each pair is almost always the same few values."""
    if len(data) < 4 or len(data) % 2:
        return None
    for codec, high in (("utf-16-le", data[1::2]), ("utf-16-be", data[0::2])):
        common = Counter(high).most_common(3)
        if sum(c for _, c in common) >= 0.95 * len(high) and any(b in (0x00, 0x06) for b, _ in common):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError:
                continue
            if sum(ch.isalpha() or ch.isspace() for ch in text) >= 0.6 * len(text):
                return text
    return None


def decode(data: bytes) -> str:
    """Bytes → text: UTF-8 (with or without BOM), UTF-16 (with or without BOM), else Windows-1256."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" in data:
        text = _utf16_without_bom(data)
        if text is None:
            raise UnreadableFile("binary file (not text)")
        return text
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        text = _utf16_without_bom(data)
        if text is not None:
            return text
        lossy = data.decode("utf-8", errors="replace")
        if lossy.count("\ufffd") <= max(3, len(lossy) // 100):  # UTF-8 with a few damaged bytes
            raise UnreadableFile(f"invalid UTF-8 at byte offset {err.start} (the rest is UTF-8): "
                                 "fix or re-save the file as UTF-8") from err
        try:
            text = data.decode("cp1256")
        except UnicodeDecodeError:
            raise UnreadableFile(f"not valid UTF-8 (bad byte at offset {err.start}) nor Windows-1256") from err
        letters = sum(ch.isalpha() for ch in text)
        arabic = sum("\u0600" <= ch <= "\u06ff" for ch in text)
        if letters and arabic / letters > 0.3:
            return text
        raise UnreadableFile(f"not valid UTF-8: bad byte at offset {err.start}") from err
    controls = sum(ch < " " and ch not in "\n\r\t" for ch in text)
    if controls > 0.1 * len(text):  # e.g. Arabic UTF-16 without BOM is "valid" ASCII
        return _utf16_without_bom(data) or text
    return text


PAGE_BREAK = "\x0c"  # between the pages of a paged document while it is cleaned


def clean(text: str, keep: str = "") -> str:
    """Unify line ends, drop control characters (but those in `keep`) and repeated
    paragraphs (kept: the first copy)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch in "\n\t" or ch >= " " or ch == "\u200c" or ch in keep)
    seen: set[str] = set()
    kept: list[str] = []
    for line in text.split("\n"):
        key = " ".join(normalize(line).split())
        if len(key) >= 20:
            if key in seen:
                continue
            seen.add(key)
        kept.append(line)
    text = "\n".join(kept)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _split_pages(text: str) -> tuple[str, tuple[int, ...]]:
    """Text with PAGE_BREAK between pages → (pages joined by a blank line, offset of each page)."""
    out: list[str] = []
    starts: list[int] = []
    pos = 0
    for part in text.split(PAGE_BREAK):
        part = part.strip()
        if out and part:
            pos += 2  # the "\n\n" before this page
        starts.append(pos)
        if part:
            out.append(part)
            pos += len(part)
    return "\n\n".join(out), tuple(starts)


def html_to_text(html: str) -> tuple[str, str]:
    """(title, text) of an HTML page: visible text only, scripts and styles dropped
    (the fallback of `rag.formats.html.extract`, which reads the article)."""
    return visible_text(html)


def _title_from(text: str) -> str:
    first = next((line.strip() for line in text.split("\n") if line.strip()), "")
    first = first.lstrip("# ").strip()
    return first if len(first) <= 120 else first[:117].rsplit(" ", 1)[0] + "…"


def make_document(text: str, source: str, title: str = "", url: str = "", date: str = "", id: str = "",
                  extractor: str = "", page_texts: tuple[str, ...] | list[str] = ()) -> Document | None:
    """A Document of cleaned text (None when nothing is left). `page_texts`: the text of each
    page instead of `text`, for paged formats (PDF), whose page offsets are kept. The date is
    normalised to ISO 8601; without one, a date line at the top of the text is used."""
    pages: tuple[int, ...] = ()
    if page_texts:
        text = clean(f"\n{PAGE_BREAK}\n".join(page_texts), keep=PAGE_BREAK)
        text, pages = _split_pages(text)
    else:
        text = clean(text)
    if not any(ch.isalnum() for ch in text):
        return None
    return Document(
        id=id or doc_id(text),
        source=source,
        title=" ".join(title.split()) or _title_from(text),
        text=text,
        lang=detect_lang(text[:5000]),
        url=url,
        date=to_iso(date) or date_line(text),
        pages=pages,
        extractor=extractor,
    )


def _extract(path: Path, data: bytes) -> Extracted:
    """The text and metadata of one file, by its type."""
    suffix = path.suffix.lower()
    if suffix in BINARY_READERS:
        module = importlib.import_module(BINARY_READERS[suffix])
        try:
            return module.extract(data)
        except (NoText, UnreadableFile):
            raise
        except Exception as e:  # noqa: BLE001 - a damaged file is reported by name, never raised
            raise UnreadableFile(f"cannot read this {suffix[1:].upper()} file ({type(e).__name__}: {e})") from e
    text = decode(data)
    if suffix in (".html", ".htm"):
        from rag.formats.html import extract

        return extract(text)
    return Extracted(text, extractor="text")


def read_file(path: Path, source: str, max_bytes: int = MAX_FILE_BYTES) -> tuple[list[Document], list[Skipped]]:
    """Documents of one file, and what was skipped in it (with the reason)."""
    size = path.stat().st_size
    if size == 0:
        return [], [Skipped(source, "empty file")]
    if size > max_bytes:
        return [], [Skipped(source, f"file too large ({size / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.0f} MiB, "
                                    "set RAG_MAX_FILE_MB to raise it)")]
    if path.suffix.lower() == ".jsonl":
        data = path.read_bytes()
        try:
            lines = decode(data).split("\n")
        except UnreadableFile:  # some lines are not UTF-8: those lines are skipped, not the file
            lines = [line.decode("utf-8", "surrogateescape") for line in data.split(b"\n")]
        return _read_jsonl(lines, source)
    try:
        ex = _extract(path, path.read_bytes())
    except NoText as e:
        return [], [Skipped(source, str(e))]
    doc = make_document(ex.text, source, title=ex.title, url=ex.url, date=ex.date, extractor=ex.extractor,
                        page_texts=ex.page_texts)
    if doc is None:
        return [], [Skipped(source, "no text (empty, white space or punctuation only)")]
    return [doc], []


def _read_jsonl(lines: list[str], source: str) -> tuple[list[Document], list[Skipped]]:
    """One Document per line holding an object with a string 'text'. A line that cannot be
    read (invalid JSON, text that cannot be encoded as UTF-8 such as a lone surrogate escape
    "\\ud800") is skipped and reported with its line number; a field that cannot be used
    (a date that is not a date) is reported and left out, and the line is indexed without it."""
    docs, skipped = [], []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}#{n}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            skipped.append(Skipped(where, f"invalid JSON: {e.msg}"))
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
            skipped.append(Skipped(where, "a line needs an object with a string field 'text'"))
            continue
        fields = {k: str(rec.get(k) or "") for k in ("title", "url", "date", "id")}
        try:
            for value in (rec["text"], *fields.values()):
                value.encode("utf-8")
        except UnicodeEncodeError as e:
            bad = e.object[e.start:e.end]
            what = (f"bytes that are not UTF-8 ({bad.encode('utf-8', 'surrogateescape')!r})"
                    if all("\udc80" <= c <= "\udcff" for c in bad) else
                    f"text that is not valid Unicode ({bad.encode('utf-8', 'backslashreplace').decode()})")
            skipped.append(Skipped(where, what))
            continue
        if fields["date"] and not to_iso(fields["date"]):
            skipped.append(Skipped(f"{where} date", f"{fields['date'][:40]!r} is not a date: the line is indexed "
                                                    "without one"))
            fields["date"] = ""
        doc = make_document(rec["text"], where, title=fields["title"], url=fields["url"], date=fields["date"],
                            id=fields["id"], extractor="jsonl")
        if doc is None:
            skipped.append(Skipped(where, "no text"))
        else:
            docs.append(doc)
    return docs, skipped


READ_CACHE_VERSION = 2  # 2: JSON (1 was a pickle, which is never read: loading one can run code)


class ReadCache:
    """What each corpus file held when it was last read, by its size and modification time,
    so that an update of a large corpus reads only the files that changed. A JSON file beside
    the index (data only, never code); it is rebuilt from the files whenever it is missing,
    damaged, of another version or not of this shape."""

    def __init__(self, path: Path | None):
        self.path = Path(path) if path else None
        self.entries: dict[str, tuple] = {}
        self.used: dict[str, tuple] = {}
        if self.path is not None and self.path.is_file():
            try:
                data = json.loads(self.path.read_text("utf-8"))
                if data.get("version") == READ_CACHE_VERSION:
                    self.entries = {source: (tuple(key), tuple(Document(**d) for d in docs),
                                             tuple(Skipped(**k) for k in bad))
                                    for source, (key, docs, bad) in data["entries"].items()}
            except Exception:  # noqa: BLE001 — a damaged or foreign cache is only a slower read
                self.entries = {}

    def get(self, source: str, key: tuple) -> tuple[list, list] | None:
        hit = self.entries.get(source)
        if hit is not None and hit[0] == tuple(key):
            self.used[source] = hit
            return list(hit[1]), list(hit[2])
        return None

    def put(self, source: str, key: tuple, docs: list, skipped: list) -> None:
        self.used[source] = (tuple(key), tuple(docs), tuple(skipped))

    def save(self) -> None:
        """Keep the files seen this time (gone files are forgotten); written atomically."""
        if self.path is None or self.used == self.entries:
            return
        entries = {source: [list(key), [d.to_dict() for d in docs], [asdict(k) for k in bad]]
                   for source, (key, docs, bad) in self.used.items()}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"version": READ_CACHE_VERSION, "entries": entries}, ensure_ascii=False), "utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass  # a read-only index folder: the next read is a full one


def _source(path: Path, root: Path) -> str:
    """A file's name as documents cite it: relative to the project root when inside it
    (the path as found, not a link's target)."""
    path = Path(os.path.realpath(path.parent)) / path.name
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def corpus_files(corpus_dir: Path, root: Path) -> tuple[list[tuple[Path, str]], list[Skipped]]:
    """(path, source) of every file under corpus_dir to read, sorted, and what is not read:
    a symbolic link whose target is outside the corpus folder (a corpus filled by a feed, a
    sync tool or another user must not be a way to read the machine's other files), and
    files and folders whose name starts with a dot (hidden: the folder is not entered).
    Links that stay inside the corpus are read like the files they point to."""
    inside = os.path.realpath(corpus_dir)
    found: list[tuple[Path, str]] = []
    skipped: list[Skipped] = []

    def outside(path: str) -> bool:
        return os.path.commonpath([inside, os.path.realpath(path)]) != inside

    for top, dirs, files in os.walk(corpus_dir):  # links to folders are listed, never entered
        for name in sorted(dirs):
            path = os.path.join(top, name)
            if name.startswith("."):
                skipped.append(Skipped(_source(Path(path), root) + "/", "a hidden folder (its name starts with a "
                                                                        "dot): not read"))
            elif os.path.islink(path):
                why = "points outside the corpus" if outside(path) else "a link to a folder of the corpus"
                skipped.append(Skipped(_source(Path(path), root) + "/", f"{why}: not read"))
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(top, d)))
        for name in sorted(files):
            path = Path(top) / name
            if name.startswith("."):
                skipped.append(Skipped(_source(path, root), "a hidden file (its name starts with a dot): not read"))
            elif path.is_symlink() and outside(str(path)):
                skipped.append(Skipped(_source(path, root),
                                       f"points outside the corpus ({os.path.realpath(path)}): not read"))
            elif path.is_file():
                found.append((path, _source(path, root)))
    return sorted(found, key=lambda f: f[1]), skipped


def load_corpus(corpus_dir: Path, project_root: Path | None = None, max_bytes: int = MAX_FILE_BYTES,
                on_progress: OnProgress | None = None, boilerplate: bool = True,
                cache: Path | None = None) -> CorpusLoad:
    """Every supported file under corpus_dir (recursively, sorted), de-duplicated by id,
    without the lines repeated across many documents (`rag.boilerplate`; `boilerplate=False`
    keeps them).

    `on_progress("reading", done, total)` reports the files read so far. `cache`: a file
    where what each file held is remembered by its size and modification time (ReadCache),
    so that only new or changed files are read again."""
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"corpus folder not found: {corpus_dir}")
    root = Path(project_root or corpus_dir.parent).resolve()
    found_all: list[Document] = []
    memo = ReadCache(cache)
    paths, skipped = corpus_files(corpus_dir, root)
    for n, (path, source) in enumerate(paths, start=1):
        if on_progress is not None and (n == 1 or n % 50 == 0):
            on_progress("reading", n - 1, len(paths))
        if path.suffix.lower() not in SUFFIXES:
            skipped.append(Skipped(source, f"unsupported file type (use {' '.join(SUFFIXES)})"))
            continue
        try:
            st = path.stat()
            key = (st.st_size, st.st_mtime_ns, max_bytes)
            remembered = memo.get(source, key)
            if remembered is not None:
                found, bad = remembered
            else:
                found, bad = read_file(path, source, max_bytes)
                memo.put(source, key, found, bad)
        except (OSError, UnreadableFile, UnicodeDecodeError) as e:
            skipped.append(Skipped(source, str(e) or type(e).__name__))
            continue
        skipped.extend(bad)
        found_all.extend(found)
    if on_progress is not None:
        on_progress("reading", len(paths), len(paths))
    memo.save()
    notes = [f"{d.source}: no article found by trafilatura; indexed the page's visible text (menus and all)"
             for d in found_all if d.extractor == "html visible text"]
    if boilerplate:
        from rag.boilerplate import remove_boilerplate

        found_all, report = remove_boilerplate(found_all)
        notes.append(report.note())
    docs: dict[str, Document] = {}
    for doc in found_all:
        if doc.id in docs:
            skipped.append(Skipped(doc.source, f"duplicate of {docs[doc.id].source}"))
        else:
            docs[doc.id] = doc
    return CorpusLoad(list(docs.values()), skipped, notes)


READ_CACHE = ".corpus-read-cache.json"  # in the index folder
OLD_READ_CACHE = ".corpus-read-cache.pkl"  # a pickle written before 0.3: removed unread


def load_project_corpus(settings, on_progress: OnProgress | None = None) -> CorpusLoad:
    """The documents of settings.corpus_dir, with the configured per-file size limit; files
    unchanged since the last read come from the read cache in the index folder (a pickle left
    by an older version is deleted unread)."""
    with contextlib.suppress(OSError):
        (Path(settings.index_dir) / OLD_READ_CACHE).unlink(missing_ok=True)
    return load_corpus(settings.corpus_dir, settings.project_root, settings.max_file_bytes, on_progress,
                       cache=Path(settings.index_dir) / READ_CACHE)
