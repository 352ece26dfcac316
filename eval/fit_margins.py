"""Fit how close a second sentence must score to the first to join the answer, on news.

An answer is its best sentence plus at most one more from the same document that scores
within a margin of it (rag.answer.select): the reader's scale (`sentence_margin`), or,
for an answer the verifier read, the verifier's (score + weight × log-odds,
`verified_margin`; unbounded until now: any verified sentence may follow). A smaller margin
gives shorter answers and loses those whose second sentence held what was asked.

eval/bench_concise.py measures the margin on the dev sets, whose SQuAD-style questions
often have their span in the second sentence. This script measures it on news: it runs
`rag eval --dialogues eval/gold/dialogues.jsonl` (the answerable turns of 49
conversations) for each margin of a grid and chooses the smallest whose whole-answer and
first-sentence containment are those of the current margin, then the same for the verified
margin at the chosen one. The seed gold set (`rag eval --gold eval/gold/seed_qa.jsonl`),
where the issue set the target (the mean answer a third shorter than the 451 characters of
three sentences from any document, containment not lower), is run at every point and
reported beside, never used to choose.

    python eval/fit_margins.py [--write-calibration]

--write-calibration stores the chosen reader margin in rag/calibration.json. The verified
margin is only reported, with whether it keeps the seed set's containment too (shipped:
unbounded; see the README's "Concise answers").
About a minute a dialogue run and 40 s a seed run on two cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rag.config import Settings
from rag.evaluation.bench import write_tuning
from rag.runtime import cpu_flags_line

ROOT = Path(__file__).resolve().parent.parent

READER_MARGINS = (2.0, 1.75, 1.5, 1.25, 1.0, 0.5, 0.0)  # the first is the current one
VERIFIED_MARGINS = (math.inf, 4.0, 2.0, 1.0, 0.0)
SEED_BEFORE = 451  # mean characters with up to three sentences from any document (README, 2026-11)


def run_eval(kind: str, path: Path, margin: float, verified: float) -> dict:
    """`rag eval` in a fresh process with the two margins; its results.json's metrics."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAG_SENTENCE_MARGIN", "RAG_VERIFIED_MARGIN")}
    env["RAG_SENTENCE_MARGIN"] = str(margin)
    if math.isfinite(verified):
        env["RAG_VERIFIED_MARGIN"] = str(verified)
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "rag.cli", "eval", f"--{kind}", str(path), "--out", out, "--quiet"]
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        metrics = json.loads((Path(out) / "results.json").read_text("utf-8"))["metrics"]
    return metrics["all"] if kind == "dialogues" else metrics["hybrid"]["all"]


def row(m: float, v: float, dlg: dict, seed: dict) -> str:
    vm = "—" if not math.isfinite(v) else f"{v:g}"
    cut = seed["answer_chars"] / SEED_BEFORE - 1
    return (f"| {m:g} | {vm} | {dlg['containment']:.3f} / {dlg['first_containment']:.3f} / {dlg['answer_chars']:.0f} | "
            f"{seed['containment']:.3f} / {seed['first_containment']:.3f} / {seed['answer_chars']:.0f} ({cut:+.1%}) |")


def keeps(a: dict, base: dict) -> bool:
    return (a["containment"] >= base["containment"] - 1e-9
            and a["first_containment"] >= base["first_containment"] - 1e-9)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dialogues", type=Path, default=ROOT / "eval" / "gold" / "dialogues.jsonl")
    ap.add_argument("--gold", type=Path, default=ROOT / "eval" / "gold" / "seed_qa.jsonl")
    ap.add_argument("--write-calibration", action="store_true")
    args = ap.parse_args()
    t0 = time.time()
    print(cpu_flags_line())
    print("\n| reader margin | verified margin | dialogues: answer / first / chars | "
          "seed: answer / first / chars (against 451) |\n|---|---|---|---|", flush=True)
    results = {}
    for m in READER_MARGINS:
        results[m, math.inf] = (run_eval("dialogues", args.dialogues, m, math.inf),
                                run_eval("gold", args.gold, m, math.inf))
        print(row(m, math.inf, *results[m, math.inf]), flush=True)
    base = results[READER_MARGINS[0], math.inf][0]
    chosen = min((m for m in READER_MARGINS if keeps(results[m, math.inf][0], base)), default=READER_MARGINS[0])
    for v in VERIFIED_MARGINS[1:]:
        results[chosen, v] = (run_eval("dialogues", args.dialogues, chosen, v), run_eval("gold", args.gold, chosen, v))
        print(row(chosen, v, *results[chosen, v]), flush=True)
    v_dlg = min((v for v in VERIFIED_MARGINS if keeps(results[chosen, v][0], base)), default=math.inf)
    seed_base = results[READER_MARGINS[0], math.inf][1]
    v_ok = keeps(results[chosen, v_dlg][1], seed_base)
    print(f"\nchosen on the dialogues (the smallest keeping their containment): reader margin {chosen:g}; "
          f"verified margin {v_dlg:g}, which {'keeps' if v_ok else 'does not keep'} the seed set's "
          f"({time.time() - t0:.0f} s)")
    if args.write_calibration:
        values = {"sentence_margin": chosen, "sentence_margin_source": (
            f"eval/fit_margins.py: the smallest margin (reader scale) of {', '.join(f'{m:g}' for m in READER_MARGINS)} "
            "whose whole-answer and first-sentence containment on the dialogue gold set's answerable turns are "
            f"those of {READER_MARGINS[0]:g}; the seed gold set, not used to choose: "
            f"{results[chosen, math.inf][1]['containment']:.3f} / {results[chosen, math.inf][1]['first_containment']:.3f}"
            f" / {results[chosen, math.inf][1]['answer_chars']:.0f} characters")}
        write_tuning(Settings.from_env().model, values)
    return 0


if __name__ == "__main__":
    sys.exit(main())
