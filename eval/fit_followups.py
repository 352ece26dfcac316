"""Fit and measure the follow-up model (rag/conversation.py), out of sample.

Every turn after the first is answered alone and in the context of the previous turn;
the follow-up model decides which reading to keep from five signals (FEATURES): how
clearly the question is answered alone and in context, how well the question itself fits
the answer found in context, how close it is to questions that say nothing on their own,
and whether the verifier finds its own words stated by the in-context reading's best
sentences.

Data: eval/gold/dialogues.jsonl over the seed corpus (the project's index). A turn of
type follow-up is a positive; switches and off-topic turns are negatives. Reported
leave one language out: the dialogues that open in one language are run turn by turn
with a model fitted on the dialogues that open in the two others, and the three
held-out runs together give the table (rag eval --dialogues's table). For comparison:
every turn read alone, and the rule without a model.

    python eval/fit_followups.py [--dialogues FILE] [--write-calibration]

--write-calibration fits the model on every dialogue and stores it in rag/calibration.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.conversation import FEATURES, FollowUpModel, fit_followup, followup_features
from rag.engine import Engine
from rag.evaluation.bench import LANGS, opening_lang, write_tuning
from rag.evaluation.dialogues import format_table, load_dialogues, run_dialogues, targets
from rag.runtime import cpu_flags_line

ROOT = Path(__file__).resolve().parent.parent

def training_rows(engine, records) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """FEATURES, label (follow-up), dialogue id and turn type of every turn after the first."""
    X, y, ids, types = [], [], [], []
    for r in records:
        if r.n == 1:
            continue
        rep = r.reply
        alone, ctx = (rep.answer, rep.other) if rep.reading == "alone" else (rep.other, rep.answer)
        q_vec = engine.embedder.embed_queries([r.turn.item.question])[0]
        X.append(followup_features(engine.index, engine.embedder, q_vec, alone, ctx, rep.judgement.context_verified))
        y.append(float(r.turn.type == "follow-up"))
        ids.append(r.dialogue)
        types.append(r.turn.type)
    return np.array(X), np.array(y), ids, types


# what a wrong reading costs: an off-topic question read in context can borrow the previous
# turn's evidence and be answered with a confident citation, the worst failure there is
COST = {"follow-up": 1.0, "switch": 1.0, "off-topic": 2.0}
SHIFTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)


def fit_with_shift(X, y, types, C: float) -> tuple[FollowUpModel, float]:
    """The logistic model, with its decision shifted (bias − shift) to the shift of SHIFTS
    that costs least on its own training turns (COST)."""
    model = fit_followup(X, y, C=C)
    scores = np.array([model.score(x) for x in X])
    def cost(shift):
        ctx = scores > shift
        return sum(COST[t] for t, c, lab in zip(types, ctx, y, strict=True) if c != (lab > 0))
    shift = min(SHIFTS, key=lambda s: (cost(s), s))
    return FollowUpModel(model.mean, model.scale, model.coef, model.bias - shift), shift


def show(title: str, records, misses: bool = False) -> None:
    print(f"\n{title}\n")
    print(format_table(records))
    for t, m, ok in targets(records):
        print(f"- {'met' if ok else 'NOT met'}: {t}: {m}")
    if misses:
        print("\nTurns read the wrong way, off-topic turns answered, switches citing the previous topic:\n")
        for r in records:
            if r.reading_ok is False or (r.turn.type == "off-topic" and not r.abstained) or r.cites_previous_topic:
                print(f"- {r.dialogue} turn {r.n} ({r.turn.type}), read {r.reply.reading}, "
                      f"{'abstained' if r.abstained else 'answered'}: {r.turn.item.question}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dialogues", type=Path, default=ROOT / "eval" / "gold" / "dialogues.jsonl")
    ap.add_argument("--C", type=float, default=1.0, help="inverse L2 regularisation of the logistic fit")
    ap.add_argument("--write-calibration", action="store_true")
    args = ap.parse_args()
    t0 = time.time()
    settings = Settings.from_env()
    engine = Engine(settings).warm_up()
    dialogues = load_dialogues(args.dialogues, settings.project_root)

    rule = run_dialogues(engine, dialogues, progress=True, model=None)
    X, y, ids, types = training_rows(engine, rule)
    lang_of = {d.id: opening_lang(d) for d in dialogues}
    alone_only = FollowUpModel(np.zeros(len(FEATURES), np.float32), np.ones(len(FEATURES), np.float32),
                               np.zeros(len(FEATURES), np.float32), -1.0)
    baseline = run_dialogues(engine, dialogues, progress=True, model=alone_only)

    held_out, shifts = [], []
    for lang in LANGS:
        train = np.array([lang_of[i] != lang for i in ids])
        model, shift = fit_with_shift(X[train], y[train], [t for t, k in zip(types, train, strict=True) if k], args.C)
        shifts.append(shift)
        part = [d for d in dialogues if opening_lang(d) == lang]
        held_out += run_dialogues(engine, part, progress=True, model=model)
    order = {d.id: n for n, d in enumerate(dialogues)}
    held_out.sort(key=lambda r: (order[r.dialogue], r.n))

    print(cpu_flags_line())
    print(f"{len(dialogues)} dialogues, {len(rule)} turns ({len(y)} after the first: {int(y.sum())} follow-ups); "
          f"{time.time() - t0:.0f} s")
    show("Every turn read alone (no conversation)", baseline)
    show("The rule without a model (in context when its evidence is better and the question fits its answer)", rule)
    show("The follow-up model, leave one opening language out (fitted on the dialogues opening in the two others; "
         f"decision shifted by {', '.join(f'{x:g}' for x in shifts)} chosen on those, off-topic errors counting double)",
         held_out, misses=True)

    if args.write_calibration:
        model, shift = fit_with_shift(X, y, types, args.C)
        write_tuning(settings.model, {"followup": model.to_dict() | {
            "source": f"eval/fit_followups.py: logistic regression (C={args.C}, decision shifted by {shift:g}) over "
                      f"{len(y)} turns after the first "
                      f"of {args.dialogues.name} ({len(dialogues)} dialogues over the seed corpus)",
            "calibrated_at": time.strftime("%Y-%m-%d")}})
        print(f"\nwrote the follow-up model (coef {dict(zip(FEATURES, model.coef.round(3).tolist(), strict=True))}, "
              f"bias {model.bias:.3f}) to rag/calibration.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
