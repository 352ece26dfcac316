"""Progress of long work (building the index, fetching the model), reported through one callback.

The library never prints progress: it calls `on_progress(stage, done, total)` for every
stage of the work, and the caller shows it — the CLI with `TerminalProgress` (one tqdm
bar per stage), the app with a Streamlit progress bar. `total` is 0 when the amount of
work is not known yet; a stage with nothing to do reports `(stage, 0, 0)` once, so
that a caller can still show that it passed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

OnProgress = Callable[[str, int, int], None]

# stage → what a person is told; in the order a build goes through them
STAGES = {
    "model": "fetching the model",
    "waiting": "waiting for another build of this index to finish",
    "reading": "reading files",
    "chunking": "splitting into passages",
    "embedding": "embedding new sentences",
    "writing": "writing the index",
    "dense": "building the FAISS index",
    "lexical": "building the BM25 index",
    "hashing": "checking the written files",
    "store": "updating the vector store",
}


def describe(stage: str, done: int, total: int, eta_s: float | None = None) -> str:
    """One line for a progress report, e.g. 'embedding new sentences: 128 of 719 (about 2 min left)'."""
    label = STAGES.get(stage, stage)
    if total <= 0:
        return f"{label}: nothing to do" if done == 0 else f"{label}: {done}"
    left = f" (about {_duration(eta_s)} left)" if eta_s is not None else ""
    return f"{label}: {done} of {total}{left}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


class Eta:
    """Time left in the current stage, from its pace so far: call it with every report;
    None until the stage has run for a few seconds (a guess from one batch misleads)."""

    def __init__(self, clock=time.monotonic, warm_up_s: float = 3.0):
        self.clock = clock
        self.warm_up_s = warm_up_s
        self.stage: str | None = None
        self.start = 0.0
        self.start_done = 0

    def __call__(self, stage: str, done: int, total: int) -> float | None:
        now = self.clock()
        if stage != self.stage or done < self.start_done:
            self.stage, self.start, self.start_done = stage, now, done
            return None
        elapsed, progressed = now - self.start, done - self.start_done
        if total <= 0 or progressed <= 0 or elapsed < self.warm_up_s:
            return None
        return elapsed / progressed * (total - done)


def fraction(stage: str, done: int, total: int) -> float:
    """How far a whole build is, 0…1, given the stage it is in (stages weighted equally,
    except embedding, which is where the time goes)."""
    weights = {s: (8.0 if s == "embedding" else 1.0) for s in STAGES if s not in ("model", "waiting")}
    if stage not in weights:
        return min(1.0, done / total) if total > 0 else 0.0
    order = list(weights)
    before = sum(weights[s] for s in order[: order.index(stage)])
    within = min(1.0, done / total) if total > 0 else 1.0
    return (before + within * weights[stage]) / sum(weights.values())


class TerminalProgress:
    """An `on_progress` for terminals: one tqdm bar per stage, on stderr."""

    def __init__(self, enabled: bool = True, file=None):
        self.enabled = enabled
        self.file = file  # None: sys.stderr at the time of writing
        self.stage: str | None = None
        self.bar = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            if done == 0 and total == 0:  # a stage passed with nothing to do: no empty bar
                return
            self.stage = stage
            self.bar = tqdm(total=total or None, desc=STAGES.get(stage, stage), file=self.file or sys.stderr,
                            unit="chunk" if stage == "model" else "it", leave=True)
        if total and self.bar.total != total:
            self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.stage = None

    def __enter__(self) -> TerminalProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
