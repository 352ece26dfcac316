"""Reports of a run: the summary table, results.json and report.md (with the plots)."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

from rag.config import Settings
from rag.evaluation.plots import INSTALL_HINT, plot_evidence, plot_recall, plots_unavailable
from rag.evaluation.runner import EvalRun, Record
from rag.index import Index

COLUMNS = [  # (header, Metrics field, kind)
    ("R@1", "recall_at_1", "f"), ("R@5", "recall_at_5", "f"), ("R@10", "recall_at_10", "f"),
    ("MRR", "mrr_at_10", "f"), ("nDCG", "ndcg_at_10", "f"), ("cont", "containment", "f"),
    ("first", "first_containment", "f"), ("chars", "answer_chars", "int"), ("F1", "f1", "f"),
    ("citP", "citation_precision", "f"), ("citR", "citation_recall", "f"),
    ("absP", "abstention_precision", "f"), ("absR", "abstention_recall", "f"), ("absF1", "abstention_f1", "f"),
    ("wrongAbs", "wrong_abstention_rate", "f"), ("p50ms", "latency_p50_ms", "ms"), ("p95ms", "latency_p95_ms", "ms"),
]
LONG_NAMES = {
    "R@1": "Recall@1", "R@5": "Recall@5", "R@10": "Recall@10", "MRR": "MRR@10", "nDCG": "nDCG@10",
    "cont": "containment", "first": "first sentence", "chars": "answer chars", "F1": "token F1", "citP": "citation P", "citR": "citation R",
    "absP": "abstention P", "absR": "abstention R", "absF1": "abstention F1", "wrongAbs": "wrong abstentions",
    "p50ms": "median ms", "p95ms": "p95 ms",
}
WORST = 10  # failures of each kind listed in report.md
FALLBACK_NOTE = ("a mode marked /fallback runs without the judge: the sentence scorer's best score "
                 "against its own threshold")


def fmt_value(v, kind: str) -> str:
    if v is None:
        return "—"
    return f"{v:.0f}" if kind in ("ms", "int") else f"{v:.3f}"


def _rows(run: EvalRun) -> list[list[str]]:
    rows = []
    for mode in run.modes:
        by_lang = run.metrics[mode]
        for lang, m in by_lang.items():
            if lang != "all" and len(by_lang) == 2:
                continue  # one language: its row would repeat "all"
            rows.append([mode, lang, str(m.n), f"{m.answerable}/{m.unanswerable}"]
                        + [fmt_value(getattr(m, f), kind) for _, f, kind in COLUMNS])
    return rows


def format_table(run: EvalRun) -> str:
    """The summary as plain aligned text: one row per mode and language."""
    header = ["mode", "lang", "n", "ans/un"] + [c[0] for c in COLUMNS]
    rows = [header] + _rows(run)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for n, r in enumerate(rows):
        if n > 1 and r[1] == "all":
            lines.append("")
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    lines.append(f"\nabstains when: {run.rule}; retrieval and answer metrics over answerable questions only "
                 f"(chars: mean length of the answers given); {FALLBACK_NOTE}")
    return "\n".join(lines)


def _settings_dict(s: Settings) -> dict:
    """The settings as the report records them; a secret (a field kept out of repr, such as the
    API token) only as whether it is set."""
    secret = {f.name for f in dataclasses.fields(s) if not f.repr}
    return {k: ("(set)" if v else None) if k in secret else str(v) if isinstance(v, Path) else v
            for k, v in dataclasses.asdict(s).items()}


def json_num(x):
    if isinstance(x, float):
        return None if math.isinf(x) or math.isnan(x) else round(x, 6)
    return x


def record_dict(r: Record, index: Index | None = None) -> dict:
    gold = set(r.item.doc_ids)
    a = r.answer
    return {
        "id": r.item.id, "mode": r.mode, "lang": r.item.lang, "question": r.item.question,
        "answerable": r.item.answerable, "gold_answers": list(r.item.answers), "gold_sources": list(r.item.sources),
        "notes": r.item.notes, "answer": a.text, "abstained": a.abstained, "evidence": json_num(a.evidence),
        "threshold": json_num(a.threshold),
        "citations": [c.to_dict() | {"gold": c.doc_id in gold} for c in a.citations],
        "retrieved": [{"rank": n, "doc_id": h.passage.doc_id,
                       "source": index.documents[h.passage.doc_id].source if index else None,
                       "start": h.passage.start, "end": h.passage.end, "score": json_num(h.score),
                       "gold": h.passage.doc_id in gold} for n, h in enumerate(a.hits, start=1)],
        "scores": {k: json_num(v) for k, v in dataclasses.asdict(r.scores).items()},
        "latency_ms": round(r.latency_ms, 1), "timings_ms": a.timings_ms,
    }


def results_dict(run: EvalRun, index: Index | None = None, info: dict | None = None) -> dict:
    return {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "gold": info or {},
        "settings": _settings_dict(run.settings),
        "index": run.manifest,
        "modes": list(run.modes),
        "threshold": json_num(run.threshold),
        "metrics": {mode: {lang: m.to_dict() for lang, m in by.items()} for mode, by in run.metrics.items()},
        "records": [record_dict(r, index) for r in run.records],
    }


def write_report(run: EvalRun, out_dir: Path, index: Index | None = None, info: dict | None = None) -> list[Path]:
    """results.json, report.md and the PNG plots in out_dir; returns the files written.

    Without matplotlib there are no plots, and report.md says why.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / "results.json"
    results.write_text(json.dumps(results_dict(run, index, info), ensure_ascii=False, indent=1), "utf-8")
    skipped = plots_unavailable()
    plots = [] if skipped else [plot_recall(run, out_dir / "recall_at_k.png"), plot_evidence(run, out_dir / "evidence.png")]
    report = out_dir / "report.md"
    report.write_text(report_markdown(run, index, info, [p.name for p in plots], plots_skipped=skipped), "utf-8")
    return [results, report, *plots]


def _md_cell(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def report_markdown(run: EvalRun, index: Index | None = None, info: dict | None = None, plots=(),
                    plots_skipped: str | None = None) -> str:
    """The report: run details, the metrics table, the worst failures, then the plots (or why
    there are none: `plots_skipped`)."""
    info = info or {}
    m = run.manifest
    lines = [
        "# Evaluation report", "",
        f"- gold: `{info.get('path', '?')}` ({info.get('kind', '?')}); {info.get('evaluated', len(run.records_for(run.primary)))} questions evaluated",
        f"- index: `{run.settings.relative(run.settings.index_dir)}` — model `{m.get('model', {}).get('id')}`, "
        f"{m.get('corpus', {}).get('documents')} documents, {m.get('corpus', {}).get('passages')} passages",
        f"- modes: {', '.join(run.modes)}; abstains when: {run.rule}",
        f"- {FALLBACK_NOTE}",
    ]
    if info.get("distractors"):
        lines.append(f"- distractors: `{info['distractors']}` ({info.get('n_distractors')} documents)")
    if info.get("calibration"):
        c = info["calibration"]
        key = "threshold" if "threshold" in c else "judge_threshold"
        lines.append(f"- calibrated now on this set ({c['mode']}): {key.replace('_', ' ')} {c[key]:.4f}, "
                     f"abstention F1 {c['f1']:.3f}")
    lines += ["", "Retrieval, answer and citation metrics are over answerable questions; abstention over all.", ""]
    header = ["mode", "lang", "n", "ans/un"] + [LONG_NAMES[c[0]] for c in COLUMNS]
    lines += ["## Metrics", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in _rows(run)]
    mode = run.primary
    recs = run.records_for(mode)

    def block(r: Record) -> list[str]:
        top = r.answer.hits[0].passage.doc_id if r.answer.hits else None
        top_src = index.documents[top].source if index and top else top
        s = r.scores
        out = [f"**{r.item.id}** ({r.item.lang}) {_md_cell(r.item.question)}", "",
               f"- expected: {_md_cell(' · '.join(r.item.answers) or '(unanswerable)')}"
               + (f" — from {', '.join(f'`{x}`' for x in r.item.sources)}" if r.item.sources else ""),
               f"- got{' (abstained)' if r.answer.abstained else ''}: {_md_cell(r.answer.text)}",
               f"- evidence {r.answer.evidence:.3f}; top passage from `{top_src}`"]
        if s.recall_at_5 is not None:
            out[-1] += f"; R@5 {s.recall_at_5:.2f}, MRR {s.mrr_at_10:.2f}, F1 {s.f1:.2f}"
        if r.item.notes:
            out.append(f"- notes: {_md_cell(r.item.notes)}")
        return out + [""]

    missed = sorted((r for r in recs if r.item.answerable and not r.scores.containment),
                    key=lambda r: (r.scores.recall_at_5, r.scores.mrr_at_10, r.scores.f1))
    answered = sorted((r for r in recs if not r.item.answerable and not r.answer.abstained),
                      key=lambda r: -r.answer.evidence)
    lines += ["", f"## Worst failures ({mode})", "",
              f"### Answerable questions whose answer lacks the gold answer ({len(missed)}), worst retrieval first", ""]
    for r in missed[:WORST]:
        lines += block(r)
    lines += [f"### Unanswerable questions answered anyway ({len(answered)}), most confident first", ""]
    for r in answered[:WORST]:
        lines += block(r)
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots]
    elif plots_skipped:
        lines += ["## Plots", "", f"Plots were skipped: {plots_skipped} ({INSTALL_HINT})."]
    return "\n".join(lines) + "\n"
