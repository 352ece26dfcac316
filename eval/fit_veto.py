"""Fit the verifier's veto threshold for the language pairs it does not judge.

By default (verifier=auto) the verifier judges answers only in the language pairs it was
trained or measured on (rag/calibration.json, "verifier" "pairs": ar>ar, en>ar, fa>fa).
Elsewhere — an English or an Arabic question over a Persian article — its log-odds are
less sure: a right answer can score below the threshold it is held to where it judges.
There it may only veto: the answer abstains when not one of the best candidates comes
near stating what is asked (log-odds below the veto threshold); the order of the
candidates is left to the scorer and the reader.

The threshold is fitted on the seed gold set (eval/gold/seed_qa.jsonl; its answerable
questions in those pairs: none may be vetoed) and set --margin lower still, since a set
this small does not show the lowest a right answer can score. It is measured out of
sample on the dialogue gold set (python eval/fit_followups.py, rag eval --dialogues),
whose questions it never saw.

    python eval/fit_veto.py [--gold FILE] [--max-wrong 0] [--margin 0.3] [--write-calibration]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from rag.answer import answer, verifier_logits
from rag.config import Settings
from rag.engine import Engine
from rag.evaluation.bench import threshold_sweep as sweep
from rag.evaluation.bench import write_tuning
from rag.evaluation.gold import load_gold
from rag.runtime import cpu_flags_line
from rag.verifier import load_verifier

ROOT = Path(__file__).resolve().parent.parent


def rows(engine, items) -> list[dict]:
    """Per question the default answers (the veto left out) in a pair the verifier does not
    judge: whether it is answerable, and the verifier's best log-odds over its candidates."""
    index, spec = engine.index, engine.index.tuning["verifier"]
    verifier = load_verifier(engine.settings)
    out = []
    for it in items:
        a = answer(index, engine.embedder, it.question, engine.settings)
        if a.abstained or a.pair in spec["pairs"] or not a.candidates:
            continue
        best = float(verifier_logits(verifier, index, it.question, a.candidates).max())
        out.append({"id": it.id, "pair": a.pair, "answerable": it.answerable, "best": best})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gold", type=Path, default=ROOT / "eval" / "gold" / "seed_qa.jsonl")
    ap.add_argument("--max-wrong", type=float, default=0.0, help="share of answerable questions the veto may lose")
    ap.add_argument("--margin", type=float, default=0.3, help="set the threshold this much lower")
    ap.add_argument("--write-calibration", action="store_true")
    args = ap.parse_args()
    t0 = time.time()
    engine = Engine(Settings.from_env(verifier="auto")).warm_up()
    spec = engine.index.tuning.get("verifier")
    if spec is None or load_verifier(engine.settings) is None:
        print("no verifier for this model", file=sys.stderr)
        return 2
    spec.pop("veto_threshold", None)  # measured without it (the shipped tuning as read, in this process only)
    items = load_gold(args.gold, engine.settings.project_root)
    r = rows(engine, items)
    ans = np.array([x["answerable"] for x in r])
    best = np.array([x["best"] for x in r])
    print(cpu_flags_line())
    print(f"\n{args.gold.name}: {len(items)} questions; answered in a pair the verifier does not judge: {len(r)} "
          f"({ans.sum()} answerable, {(~ans).sum()} not; pairs {', '.join(sorted({x['pair'] for x in r}))})\n")
    fitted = sweep(best, ans, np.round(np.arange(-3.0, 1.01, 0.1), 2), args.max_wrong,
                   header="| veto below | answerable vetoed (wrong) | unanswerable vetoed |")
    threshold = round(float(fitted - args.margin), 2)
    print(f"\nlowest answerable: {best[ans].min():+.2f}; highest with at most {args.max_wrong:.0%} vetoed: "
          f"{fitted:+.1f}; veto threshold {threshold:+.2f} ({args.margin} lower); {time.time() - t0:.0f} s")
    if args.write_calibration:
        write_tuning(engine.settings.model, {"verifier": spec | {
            "veto_threshold": threshold,
            "veto_source": f"eval/fit_veto.py: on {args.gold.name} ({ans.sum()} answerable questions answered in "
                           f"pairs it does not judge, at most {args.max_wrong:.0%} vetoed), {args.margin} lower"}})
        print("wrote the veto threshold to rag/calibration.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
