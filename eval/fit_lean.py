"""Fit how much a follow-up read in context leans on the previous turn, out of sample.

A turn read in context retrieves with the conversation but reads the candidate sentences
with its own words (rag/conversation.py). "در کدام کشور؟" (in which country?) after a
question on what Kerry would ask Zarif then prefers any sentence that names a place to the
one that states the request, in Yemen. The lean (rag.answer.lean_on) adds, once the
candidates are read, weight × each candidate's cosine with the previous turn's search text.

Data: eval/gold/dialogues.jsonl over the seed corpus, asked turn by turn with the shipped
follow-up model and no lean. For every follow-up turn the in-context reading's candidates
are kept as read (Answer.ordered) and re-ordered with each weight of WEIGHTS: does the
first sentence contain the gold answer? Reported leave one opening language out (the
weight with the most first sentences right on the dialogues opening in the two other
languages, the smaller on a tie). The lean changes no reading's evidence, so which
reading a turn keeps is the same at every weight; a turn's answer can change which
documents the next turn leans on, which this does not replay: `python
eval/fit_followups.py` measures the whole conversation with the weight shipped.

    python eval/fit_lean.py [--dialogues FILE] [--write-calibration]

--write-calibration stores the weight fitted on every dialogue in rag/calibration.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.engine import Engine
from rag.evaluation.bench import LANGS, opening_lang, write_tuning
from rag.evaluation.dialogues import load_dialogues, run_dialogues
from rag.metrics import containment
from rag.runtime import cpu_flags_line

ROOT = Path(__file__).resolve().parent.parent

WEIGHTS = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0)


def turns(engine, dialogues, records) -> list[dict]:
    """Per follow-up turn whose in-context reading answered: the opening language, the
    candidates as read (score, sentence), each one's cosine with the previous turn's search
    text and whether it contains a gold answer, and the reading kept."""
    index = engine.index
    opening = {d.id: opening_lang(d) for d in dialogues}
    previous = {(r.dialogue, r.n): r.reply.query for r in records}
    kept = []  # (record, its in-context reading)
    for r in records:
        if r.n == 1 or r.turn.type != "follow-up":
            continue
        ctx = r.reply.answer if r.reply.reading == "in-context" else r.reply.other
        if ctx is not None and ctx.ordered:
            kept.append((r, ctx))
    befores = engine.embedder.embed_queries([previous[(r.dialogue, r.n - 1)] for r, _ in kept]) if kept else []
    rows = []
    for (r, ctx), before in zip(kept, befores, strict=True):
        js = [j for _, j in ctx.ordered]
        rows.append({"lang": opening[r.dialogue], "kept": r.reply.reading,
                     "score": np.array([s for s, _ in ctx.ordered]),
                     "cos": index.sentence_vectors[js] @ np.asarray(before, np.float32),
                     "ok": np.array([containment(index.sentence_text(j), r.turn.item.answers) for j in js])})
    return rows


def lead_right(row: dict, weight: float) -> float:
    """Whether the row's first sentence, leaned with this weight, contains the gold."""
    return float(row["ok"][int(np.argmax(row["score"] + weight * row["cos"]))])


def first_right(rows: list[dict], weight: float) -> float:
    """Share of rows whose first sentence, leaned with this weight, contains the gold."""
    return float(np.mean([lead_right(x, weight) for x in rows])) if rows else 0.0


def best_weight(rows: list[dict]) -> float:
    return max(WEIGHTS, key=lambda w: (first_right(rows, w), -w))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dialogues", type=Path, default=ROOT / "eval" / "gold" / "dialogues.jsonl")
    ap.add_argument("--write-calibration", action="store_true")
    args = ap.parse_args()
    t0 = time.time()
    settings = Settings.from_env()
    engine = Engine(settings).warm_up()
    engine._index = engine.index.with_tuning(engine.index.tuning.replace(lean=None))  # measured without it
    dialogues = load_dialogues(args.dialogues, settings.project_root)
    rows = turns(engine, dialogues, run_dialogues(engine, dialogues, progress=True))

    print(cpu_flags_line())
    print(f"\n{args.dialogues.name}: {len(dialogues)} dialogues; {len(rows)} follow-up turns whose in-context "
          f"reading answers ({sum(x['kept'] == 'in-context' for x in rows)} of them kept in context); {time.time() - t0:.0f} s\n")
    print("| weight | first sentence contains the gold: all | kept in context | " + " | ".join(LANGS) + " |")
    print("|---|---|---|" + "---|" * len(LANGS))
    kept = [x for x in rows if x["kept"] == "in-context"]
    for w in WEIGHTS:
        by_lang = [first_right([x for x in rows if x["lang"] == lang], w) for lang in LANGS]
        print(f"| {w:g} | {first_right(rows, w):.3f} | {first_right(kept, w):.3f} | "
              + " | ".join(f"{v:.3f}" for v in by_lang) + " |")

    held, chosen = [], []
    for lang in LANGS:
        w = best_weight([x for x in rows if x["lang"] != lang])
        chosen.append(w)
        held += [lead_right(x, w) for x in rows if x["lang"] == lang]
    right = float(np.mean(held)) if held else 0.0
    print(f"\nleave one opening language out: weights {', '.join(f'{lang} {w:g}' for lang, w in zip(LANGS, chosen, strict=True))} "
          f"(each fitted on the two other languages); held-out first sentence {right:.3f}, against {first_right(rows, 0.0):.3f} "
          "without the lean")

    if args.write_calibration:
        w = best_weight(rows)
        write_tuning(settings.model, {"lean": {
            "weight": w,
            "source": f"eval/fit_lean.py: the weight of WEIGHTS with the most first sentences right over {len(rows)} "
                      f"follow-up turns of {args.dialogues.name} ({len(dialogues)} dialogues over the seed corpus)",
            "calibrated_at": time.strftime("%Y-%m-%d")}})
        print(f"wrote the lean weight {w:g} to rag/calibration.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
