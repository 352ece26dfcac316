"""The `rag eval` command."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from rag.answer import judge_spec
from rag.config import MODES, Settings
from rag.corpus import Document, load_project_corpus
from rag.evaluation.cache import cache_dir, ensure_index
from rag.evaluation.distractors import load_distractors
from rag.evaluation.gold import load_gold, load_squad
from rag.evaluation.plots import INSTALL_HINT, plots_unavailable
from rag.evaluation.report import fmt_value, format_table, json_num, write_report
from rag.evaluation.runner import calibrate, evaluate, store_calibration
from rag.progress import TerminalProgress


def add_eval_parser(sub) -> None:
    sp = sub.add_parser(
        "eval", help="evaluate retrieval, answers, citations and abstention on a gold set",
        description="Ask every gold question, score the answers and write results.json, report.md "
                    "and plots to eval/reports/<timestamp>/ (or --out).")
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--gold", type=Path, metavar="FILE.jsonl", help="gold questions in our JSONL format, over the project's index")
    src.add_argument("--squad", type=Path, metavar="FILE.json",
                     help="a SQuAD v1.1/v2.0 file: its contexts are indexed (cached under eval/cache/) and its questions asked")
    src.add_argument("--dialogues", type=Path, metavar="FILE.jsonl",
                     help="multi-turn dialogues (rag/evaluation/dialogues.py), asked turn by turn over the project's "
                          "index; reports containment, citations, abstention and the reading kept, by turn type")
    sp.add_argument("--distractors", type=Path, metavar="PATH",
                    help="extra documents: a corpus folder, or news .json/.zip files (or a folder of them)")
    sp.add_argument("--max-distractors", type=int, default=200, metavar="N",
                    help="sample at most N distractor documents (default 200, fixed seed; 0 = all)")
    sp.add_argument("--out", type=Path, metavar="DIR", help="report folder (default eval/reports/<timestamp>/)")
    modes = sp.add_mutually_exclusive_group()
    modes.add_argument("--compare", action="store_true", help=f"run every mode ({', '.join(MODES)}) on the same questions")
    modes.add_argument("--mode", choices=MODES, help="the one mode to run (default: the configured mode, hybrid)")
    sp.add_argument("--limit", type=int, metavar="N", help="only the first N questions (the corpus stays whole)")
    sp.add_argument("--fallback", action="store_true",
                    help="also run every mode without the judge (the sentence scorer's best score against "
                         "its own threshold), side by side")
    sp.add_argument("--calibrate", action="store_true",
                    help="choose the abstention threshold with the best abstention F1 on this set and store it with the index")
    sp.add_argument("--corpus", type=Path, help="corpus folder (with --gold --distractors; default corpus/)")
    sp.add_argument("--index", type=Path, help="index folder (default index/; with --squad or --distractors: eval/cache/<hash>/)")
    sp.add_argument("--model", help="embedding model (default embeddinggemma-300m; hash-256 for quick checks)")
    sp.add_argument("--json", action="store_true", help="print the metrics as JSON instead of the table")
    sp.add_argument("--quiet", action="store_true", help="no progress output")
    sp.set_defaults(func=cmd_eval)


def _report_dir(settings: Settings) -> Path:
    base = settings.project_root / "eval" / "reports" / time.strftime("%Y%m%d-%H%M%S")
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def cmd_eval(args) -> int:
    from rag.engine import Engine

    progress = not args.quiet
    no_plots = plots_unavailable()
    if no_plots:  # say so now, not after the run
        print(f"warning: {no_plots}: the report will have no plots; {INSTALL_HINT}", file=sys.stderr)
    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be at least 1")
    if args.max_distractors < 0:
        raise ValueError("--max-distractors must be 0 (all) or more")
    settings = Settings.from_env(corpus_dir=args.corpus, model=args.model, mode=args.mode)
    if args.dialogues:
        return _eval_dialogues(args, settings, progress)
    documents: list[Document] | None = None
    if args.squad:
        documents, items = load_squad(args.squad)
        info = {"kind": "squad", "path": str(args.squad), "questions": len(items), "contexts": len(documents)}
    else:
        items = load_gold(args.gold, settings.project_root)
        info = {"kind": "gold", "path": str(args.gold), "questions": len(items)}
    if args.distractors:
        extra = load_distractors(args.distractors, limit=args.max_distractors or None)
        if documents is None:
            documents = load_project_corpus(settings).documents
        known = {d.id for d in documents}
        extra = [d for d in extra if d.id not in known]
        documents = documents + extra
        info |= {"distractors": str(args.distractors), "n_distractors": len(extra)}
        if progress:
            print(f"added {len(extra)} distractor documents from {args.distractors}"
                  + (f" (a sample: --max-distractors {args.max_distractors})" if args.max_distractors else ""), file=sys.stderr)
    if documents is None:
        engine = Engine(settings.replace(index_dir=args.index), on_progress=TerminalProgress(enabled=progress))
    else:
        index_dir = Path(args.index or cache_dir(settings, documents)).expanduser().resolve()
        if index_dir == settings.index_dir:
            raise ValueError(f"--index {args.index} is the project's index: with --squad or --distractors the "
                             "index is rebuilt from other documents, so give another folder (default eval/cache/)")
        engine = Engine(settings.replace(index_dir=index_dir), on_progress=TerminalProgress(enabled=progress))
        ensure_index(engine.settings, engine.embedder, documents, engine.on_progress)
    items = items[: args.limit] if args.limit else items
    if args.calibrate and len({i.answerable for i in items}) < 2:
        raise ValueError("--calibrate needs both answerable and unanswerable questions "
                         f"({sum(i.answerable for i in items)} of the {len(items)} questions are answerable)")
    info["evaluated"] = len(items)
    info["answerable"] = sum(i.answerable for i in items)
    modes = MODES if args.compare else (engine.settings.mode,)

    if args.calibrate:
        mode = engine.settings.mode
        cal = calibrate(evaluate(engine, items, (mode,), progress))
        key = "judge_threshold" if judge_spec(engine.index, engine.settings) is not None else "threshold"
        stored = store_calibration(engine.index, cal, Path(info["path"]).name, mode, key)
        info["calibration"] = stored
        print(f"calibrated abstention threshold {cal.threshold:.4f} ({mode}): abstention F1 {cal.scores.f1:.3f}, "
              f"precision {fmt_value(cal.scores.precision, 'f')}, recall {fmt_value(cal.scores.recall, 'f')}, "
              f"wrong abstentions {fmt_value(cal.scores.wrong_rate, 'f')} on {len(items)} questions "
              f"→ stored in {engine.settings.relative(engine.settings.index_dir / 'calibration.json')}", file=sys.stderr)
        if engine.settings.abstain_threshold is not None:
            print(f"warning: abstain_threshold is set explicitly ({engine.settings.abstain_threshold}); "
                  "it overrides the calibrated value in this run", file=sys.stderr)

    run = evaluate(engine, items, modes, progress, fallback=args.fallback)
    out = args.out or _report_dir(engine.settings)
    write_report(run, out, engine.index, info)
    if args.json:
        metrics = {mode: {lang: m.to_dict() for lang, m in by.items()} for mode, by in run.metrics.items()}
        print(json.dumps({"report": str(out), "threshold": json_num(run.threshold), "metrics": metrics}, ensure_ascii=False, indent=1))
    else:
        print(format_table(run))
        print(f"report: {engine.settings.relative(out / 'report.md')}")
    return 0


def _eval_dialogues(args, settings: Settings, progress: bool) -> int:
    from rag.engine import Engine
    from rag.evaluation.dialogues import format_table as dialogue_table
    from rag.evaluation.dialogues import (
        load_dialogues,
        run_dialogues,
        targets,
        write_dialogue_report,
    )

    for flag in ("squad", "distractors", "compare", "fallback", "calibrate"):
        if getattr(args, flag):
            raise ValueError(f"--{flag} does not apply to --dialogues")
    dialogues = load_dialogues(args.dialogues, settings.project_root)
    dialogues = dialogues[: args.limit] if args.limit else dialogues
    engine = Engine(settings.replace(index_dir=args.index), on_progress=TerminalProgress(enabled=progress))
    records = run_dialogues(engine, dialogues, progress)
    out = args.out or _report_dir(engine.settings)
    info = {"kind": "dialogues", "path": str(args.dialogues), "dialogues": len(dialogues), "turns": len(records),
            "model": engine.settings.model}
    write_dialogue_report(records, out, info)
    if args.json:
        print(json.dumps(json.loads((out / "results.json").read_text("utf-8"))["metrics"], ensure_ascii=False, indent=1))
    else:
        print(dialogue_table(records))
        for t, m, ok in targets(records):
            print(f"{'met' if ok else 'NOT met'}: {t}: {m}")
        print(f"report: {engine.settings.relative(out / 'report.md')}")
    return 0
