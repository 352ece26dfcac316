"""Indexes of evaluation corpora (SQuAD contexts, distractors): eval/cache/<hash>/."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from rag.config import Settings
from rag.corpus import Document
from rag.index import Index, IndexProblem, build_index


def cache_dir(settings: Settings, documents: list[Document]) -> Path:
    """eval/cache/<hash of the documents and the index settings>/ (git-ignored)."""
    key = "\n".join(sorted(d.id for d in documents))
    key += f"\n{settings.model}|{settings.dim}|{settings.chunk_size}|{settings.chunk_overlap}|{settings.faiss}"
    return settings.project_root / "eval" / "cache" / hashlib.sha256(key.encode()).hexdigest()[:16]


def ensure_index(settings: Settings, embedder, documents: list[Document], progress: bool = True) -> bool:
    """Make settings.index_dir an index of exactly these documents; True if it was (re)built.

    An index already holding them is reused; otherwise a build embeds only text that the
    previous build in the same folder did not have.
    """
    try:
        idx = Index.load(settings.index_dir, settings, embedder, verify=False)
        chunking = idx.manifest.get("chunking", {})
        if (sorted(idx.documents) == sorted(d.id for d in documents)
                and chunking.get("chunk_size") == settings.chunk_size
                and chunking.get("chunk_overlap") == settings.chunk_overlap):
            if progress:
                print(f"reusing the index at {settings.relative(settings.index_dir)} ({len(documents)} documents)",
                      file=sys.stderr)
            return False
    except IndexProblem:
        pass
    if progress:
        print(f"indexing {len(documents)} documents into {settings.relative(settings.index_dir)}", file=sys.stderr)
    build_index(settings, embedder, progress=progress, documents=documents)
    return True
