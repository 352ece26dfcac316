"""Adding an uploaded file to the corpus folder: a safe name, a size limit, validation.

The file is checked with `rag.corpus.read_file` before it appears in the corpus under
its final name, and a file is never overwritten: another file of the same name gets a
numbered name, and the same bytes a second time are reported as already there.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rag.corpus import MAX_FILE_BYTES, SUFFIXES, Document, UnreadableFile, read_file
from ui import i18n

MAX_UPLOAD_BYTES = MAX_FILE_BYTES  # the same limit as corpus files (Settings.max_file_mb)
MAX_NAME_CHARS = 100


class UploadError(ValueError):
    """An upload that cannot be added: `key` names the catalogue message (ui/i18n.py) that
    says why, `fields` fill it; str() is the English message."""

    def __init__(self, key: str, **fields: object):
        self.key, self.fields = key, fields
        super().__init__(i18n.t("en", key, **fields))

    def message(self, lang: str) -> str:
        """The message in an interface language."""
        return i18n.t(lang, self.key, **self.fields)


@dataclass(frozen=True)
class Added:
    path: Path  # where the file was written (or the identical file already there)
    source: str  # path relative to the project root, as citations show it
    documents: list[Document]
    new: bool  # False: the same bytes were already in the corpus under this name


def safe_name(name: str) -> str:
    """A plain file name for the corpus folder: no folders, no '..', no hidden or odd characters."""
    name = unicodedata.normalize("NFC", name or "").replace("\\", "/")
    name = PurePosixPath(name).name  # drops any folder part, absolute or relative
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")  # control, format (bidi), private use
    name = re.sub(r"[^\w.\- ]", "_", name).strip(" .")  # no leading dot: hidden files are not indexed
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem.strip("._ -"):
        raise UploadError("upload_no_type", name=name or "?", types=" ".join(SUFFIXES))
    suffix = suffix.lower()
    if f".{suffix}" not in SUFFIXES:
        raise UploadError("upload_unsupported", name=name, suffix=suffix, types=" ".join(SUFFIXES))
    stem = stem[:MAX_NAME_CHARS].strip(" .")
    return f"{stem}.{suffix}"


def _free_path(corpus_dir: Path, name: str, data: bytes) -> tuple[Path, bool]:
    """(path, is_new): the name itself, the existing identical file, or name-2, name-3, …"""
    stem, suffix = name.rsplit(".", 1)
    for i in range(1, 1000):
        path = corpus_dir / (name if i == 1 else f"{stem}-{i}.{suffix}")
        if not path.exists() and not path.is_symlink():
            return path, True
        if path.is_file() and not path.is_symlink() and path.stat().st_size == len(data) and path.read_bytes() == data:
            return path, False
    raise UploadError("upload_too_many", name=name)


def add_upload(name: str, data: bytes, corpus_dir: Path, project_root: Path,
               known_ids: dict[str, str] | None = None, max_bytes: int = MAX_UPLOAD_BYTES) -> Added:
    """Validate an uploaded file and write it into corpus_dir (never outside it, never over a file).

    known_ids maps document ids already indexed to their source, to refuse a copy of
    a document under another name.
    """
    name = safe_name(name)
    if len(data) > max_bytes:
        raise UploadError("upload_too_big", name=name, size=f"{len(data) / 2**20:.1f}", max=max_bytes // 2**20)
    if not data.strip():
        raise UploadError("upload_empty", name=name)
    corpus_dir = Path(corpus_dir).resolve()
    corpus_dir.mkdir(parents=True, exist_ok=True)
    path, new = _free_path(corpus_dir, name, data)
    source = _source(path, project_root)
    if not new:
        docs, _ = read_file(path, source)
        return Added(path, source, docs, new=False)

    # validate a hidden copy (hidden files are not indexed), then link it in under the
    # final name: os.link fails instead of overwriting if that name appeared meanwhile
    fd, tmp_name = tempfile.mkstemp(prefix=".upload-", suffix=path.suffix, dir=corpus_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            docs, skipped = read_file(tmp, source)
        except (UnreadableFile, UnicodeDecodeError) as e:
            raise UploadError("upload_unreadable", name=name, error=str(e)) from e
        if not docs:
            reasons = "; ".join(s.reason for s in skipped) or "no text"
            raise UploadError("upload_no_document", name=name, reasons=reasons)
        if known_ids:
            dup = [known_ids[d.id] for d in docs if d.id in known_ids]
            if len(dup) == len(docs):
                raise UploadError("upload_duplicate", name=name, sources=", ".join(sorted(set(dup))))
        try:
            os.link(tmp, path)
        except FileExistsError as e:
            raise UploadError("upload_race", name=name) from e
    finally:
        tmp.unlink(missing_ok=True)
    return Added(path, source, docs, new=True)


def _source(path: Path, project_root: Path) -> str:
    try:
        return path.resolve().relative_to(Path(project_root).resolve()).as_posix()
    except ValueError:
        return path.as_posix()
