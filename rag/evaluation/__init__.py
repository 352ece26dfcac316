"""Evaluation: gold loaders, the runner, calibration, reports and the `rag eval` command.

    items = load_gold("eval/gold/seed_qa.jsonl", settings.project_root)
    run = evaluate(engine, items, modes=("hybrid", "dense", "lexical"))
    run.metrics["hybrid"]["all"].recall_at_5

Gold questions come from our JSONL format (`load_gold`) or from any SQuAD v1.1/v2.0
file (`load_squad`, which also returns the contexts as documents to index); news
articles can be added as distractors (`load_distractors`). The metric functions
themselves are pure and live in `rag.metrics`.

Modules, each importing only those before it: `sampling`, `gold` (gold questions),
`distractors`, `runner` (asking, scoring, calibrating), `cache` (indexes of evaluation
corpora), `plots`, `report`, `cli` (`rag eval`). This package re-exports their public names.
"""

from rag.evaluation.cache import cache_dir, ensure_index
from rag.evaluation.cli import add_eval_parser, cmd_eval
from rag.evaluation.distractors import load_distractors
from rag.evaluation.gold import LANGS, GoldError, GoldItem, load_gold, load_squad, resolve_source
from rag.evaluation.plots import plot_evidence, plot_recall
from rag.evaluation.report import (
    COLUMNS,
    format_table,
    record_dict,
    report_markdown,
    results_dict,
    write_report,
)
from rag.evaluation.runner import (
    EvalRun,
    K,
    Metrics,
    QuestionScores,
    Record,
    calibrate,
    evaluate,
    score_question,
    store_calibration,
    summarize,
)

__all__ = [
    "COLUMNS", "K", "LANGS", "EvalRun", "GoldError", "GoldItem", "Metrics", "QuestionScores", "Record",
    "add_eval_parser", "cache_dir", "calibrate", "cmd_eval", "ensure_index", "evaluate", "format_table",
    "load_distractors", "load_gold", "load_squad", "plot_evidence", "plot_recall", "record_dict",
    "report_markdown", "resolve_source", "results_dict", "score_question", "store_calibration", "summarize",
    "write_report",
]
