"""Indexes of evaluation corpora (SQuAD contexts, distractors): eval/cache/<fingerprint>/."""

from __future__ import annotations

import logging
from pathlib import Path

from rag.build import build_index
from rag.config import Settings
from rag.corpus import Document
from rag.index import Index, IndexProblem, fingerprint
from rag.progress import OnProgress

log = logging.getLogger(__name__)


def cache_dir(settings: Settings, documents: list[Document]) -> Path:
    """eval/cache/<fingerprint of the documents and the build settings>/ (git-ignored)."""
    return settings.project_root / "eval" / "cache" / fingerprint(settings, documents)[:16]


def ensure_index(settings: Settings, embedder, documents: list[Document], on_progress: OnProgress | None = None) -> bool:
    """Make settings.index_dir an index of exactly these documents; True if it was (re)built.

    An index built from them with these settings (the same fingerprint) is reused;
    otherwise a build embeds only text that the previous build in the folder did not have.
    """
    try:
        if Index.load(settings.index_dir, settings, embedder, verify=False).is_current(settings, documents):
            log.info("reusing the index at %s (%d documents)", settings.relative(settings.index_dir), len(documents))
            return False
    except IndexProblem:
        pass
    log.info("indexing %d documents into %s", len(documents), settings.relative(settings.index_dir))
    build_index(settings, embedder, documents=documents, on_progress=on_progress)
    return True
