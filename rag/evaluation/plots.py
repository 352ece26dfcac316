"""PNG plots of a run (matplotlib, from the `eval` extra)."""

from __future__ import annotations

import math
import random
from pathlib import Path

from rag.evaluation.runner import EvalRun, K
from rag.metrics import mean, recall_at

INSTALL_HINT = "pip install 'rag[eval]'"


def plots_unavailable() -> str | None:
    """Why no plots can be drawn (matplotlib, from the `eval` extra, is missing), else None."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed"
    return None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_recall(run: EvalRun, path: Path) -> Path:
    """Recall@k for k = 1..10, one line per mode."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ks = list(range(1, K + 1))
    for mode in run.modes:
        recs = [r for r in run.records_for(mode) if r.item.answerable]
        ranked = [[h.passage.doc_id for h in r.answer.hits] for r in recs]
        ys = [mean(recall_at(x, r.item.doc_ids, kk) for x, r in zip(ranked, recs, strict=True)) for kk in ks]
        ax.plot(ks, [math.nan if y is None else y for y in ys], marker="o", label=mode)
    ax.set(xlabel="k (passages)", ylabel="Recall@k", title="Recall@k by mode", ylim=(0, 1.02), xticks=ks)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_evidence(run: EvalRun, path: Path) -> Path:
    """Evidence scores of answerable vs unanswerable questions, with the threshold, per mode."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(run.modes), 1, figsize=(9, 2.2 * len(run.modes) + 0.8), squeeze=False)
    for ax, mode in zip(axes[:, 0], run.modes, strict=True):
        recs = run.records_for(mode)
        for answerable, label, y, colour in ((True, "answerable", 1, "tab:green"), (False, "unanswerable", 0, "tab:red")):
            xs = [r.answer.evidence for r in recs if r.item.answerable == answerable]
            jitter = [y + random.Random(i).uniform(-0.15, 0.15) for i in range(len(xs))]
            ax.scatter(xs, jitter, s=18, alpha=0.7, color=colour, label=f"{label} ({len(xs)})")
        if run.threshold is not None:
            ax.axvline(run.threshold, color="black", linestyle="--", label=f"threshold {run.threshold:.3f}")
        ax.set(yticks=[0, 1], yticklabels=["unanswerable", "answerable"], ylim=(-0.5, 1.5), title=f"evidence scores — {mode}")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    axes[-1, 0].set_xlabel("evidence (best sentence score; abstain below the threshold)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
