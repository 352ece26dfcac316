"""Shared fixtures: a tiny multilingual corpus with a fast deterministic embedder, and
the seed corpus indexed once per session with the real model (tests copy, never write it)."""

from __future__ import annotations

import shutil
import threading
import time
import traceback
from pathlib import Path

import pytest

from rag.config import Settings
from rag.embedding import HashEmbedder
from rag.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "corpus"

TINY = {
    "fa_call.txt": "تماس تلفنی پوتین و ترامپ\nپوتین و ترامپ شامگاه شنبه تلفنی گفتگو کردند. این تماس حدود ۵۰ دقیقه طول کشید.\n"
    "دو رئیس جمهور درباره ایران و خاورمیانه صحبت کردند.",
    "ar_meeting.txt": "اجتماع كيري وظريف\nالتقى وزير الخارجية الأميركي جون كيري نظيره الإيراني محمد جواد ظريف في نيويورك أمس الأحد. "
    "واستمر الاجتماع نحو ساعة.",
    "en_weather.md": "# Geneva weather\nGeneva had heavy snow on Friday. The airport closed for three hours.",
}


def run_workers(worker, n: int, timeout: float) -> None:
    """Run worker(0) … worker(n-1) in n threads at once and wait for all of them. The test
    fails when a worker raises (with its traceback) or is still running `timeout` seconds
    after the start (its thread is a daemon, so it cannot keep the test run alive)."""
    failures: list[str] = []

    def guarded(i: int) -> None:
        try:
            worker(i)
        except BaseException:  # noqa: BLE001 - every failure of a worker fails the test below
            failures.append(f"worker {i} of {n} raised:\n{traceback.format_exc()}")

    threads = [threading.Thread(target=guarded, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    failures += [f"worker {i} of {n} still running after {timeout} s" for i, t in enumerate(threads) if t.is_alive()]
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


def write_tiny_corpus(root: Path) -> Path:
    corpus = root / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for name, text in TINY.items():
        (corpus / name).write_text(text, encoding="utf-8")
    return corpus


@pytest.fixture
def tiny_project(tmp_path) -> Settings:
    """A project folder with the tiny corpus; settings use the hash embedder."""
    write_tiny_corpus(tmp_path)
    return Settings(project_root=tmp_path, model="hash-256", abstain_threshold=0.05)


@pytest.fixture
def tiny_engine(tiny_project) -> Engine:
    engine = Engine(tiny_project, HashEmbedder(256))
    engine.build(progress=False)
    return engine


@pytest.fixture(scope="session")
def seed_index_dir(tmp_path_factory) -> Path:
    """A project folder holding a copy of the seed corpus and its index, built once with the real model."""
    root = tmp_path_factory.mktemp("seedproject")
    shutil.copytree(SEEDS, root / "corpus")
    engine = Engine(Settings(project_root=root))
    engine.build(progress=False)
    return root


@pytest.fixture
def seed_project(seed_index_dir, tmp_path) -> Settings:
    """A private copy of the seed project (corpus + built index) that a test may change."""
    root = tmp_path / "project"
    shutil.copytree(seed_index_dir, root, symlinks=True)
    return Settings(project_root=root)


@pytest.fixture(scope="session")
def seed_engine(seed_index_dir) -> Engine:
    """A warm engine over the seed index (read-only: do not build or upload with it)."""
    return Engine(Settings(project_root=seed_index_dir)).warm_up()
