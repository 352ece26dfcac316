"""A new question after an unanswered one: is it read on its own?

A user who asks something the articles do not cover and then asks something they do
should get the second question answered as a new question, not as a follow-up to the
unanswered one. The dialogue gold set has few such turns (three turns follow an
abstention, none an off-topic turn), so this builds them from the two gold sets, with
nothing fitted on the pairs: each question of the seed gold set is asked right after one
of the dialogue set's off-topic questions (taken in turn), as a two-turn conversation.
Every second turn is a self-contained question on a topic of its own, so the right
reading is "alone" and the right answer is the one it gets as a first question.

Reported over the conversations whose first turn abstained (the pattern) and, apart, those
where it did not (an off-topic question answered: another failure, measured in the
dialogues): the second turn read alone, its answer's containment of the gold (whole and
first sentence) against the same question asked as a first question, and the unanswerable
questions abstained.

    python eval/bench_after_abstention.py [--gold FILE] [--dialogues FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rag.config import Settings
from rag.conversation import reply
from rag.engine import Engine
from rag.evaluation.gold import load_gold
from rag.metrics import containment, mean
from rag.runtime import cpu_flags_line

ROOT = Path(__file__).resolve().parent.parent


def off_topic_questions(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out += [t["question"] for t in json.loads(line)["turns"] if t["type"] == "off-topic"]
    return out


def scores(item, ans) -> tuple[float, float] | None:
    if not item.answerable:
        return None
    first = containment(ans.sentences[0], item.answers) if ans.sentences else 0.0
    return containment(" ".join(ans.sentences), item.answers), first


def table(rows: list[dict]) -> str:
    ok = [r for r in rows if r["kept"] is not None]
    un = [r for r in rows if r["kept"] is None]
    lines = ["| | turns | read alone | answer contains the gold | first sentence | unanswerable abstained |",
             "|---|---|---|---|---|---|"]
    for name, key in (("second turn, as read", "kept"), ("the same question as a first turn", "first")):
        alone = mean(float(r["reading"] == "alone") for r in rows) if key == "kept" else None
        lines.append(
            f"| {name} | {len(rows)} ({len(ok)} answerable) | {'—' if alone is None else f'{alone:.3f}'} | "
            f"{mean(r[key][0] for r in ok):.3f} | {mean(r[key][1] for r in ok):.3f} | "
            f"{mean(float(r[key + '_abstained']) for r in un) if un else float('nan'):.3f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gold", type=Path, default=ROOT / "eval" / "gold" / "seed_qa.jsonl")
    ap.add_argument("--dialogues", type=Path, default=ROOT / "eval" / "gold" / "dialogues.jsonl")
    args = ap.parse_args()
    t0 = time.time()
    settings = Settings.from_env()
    engine = Engine(settings).warm_up()
    index, embedder = engine.index, engine.embedder
    items = load_gold(args.gold, settings.project_root)
    offs = off_topic_questions(args.dialogues)
    rows = []
    for n, item in enumerate(items):
        off = offs[n % len(offs)]
        before = reply(index, embedder, off, None, settings)
        r = reply(index, embedder, item.question, before.context(), settings)
        alone = r.answer if r.reading == "alone" else r.other
        rows.append({"id": item.id, "off_topic": off, "off_abstained": before.answer.abstained, "reading": r.reading,
                     "kept": scores(item, r.answer), "kept_abstained": r.answer.abstained,
                     "first": scores(item, alone), "first_abstained": alone.abstained})
        print(f"{item.id}: after {'an abstention' if before.answer.abstained else 'an answer'}, read {r.reading}, "
              f"{'abstained' if r.answer.abstained else 'answered'}", file=sys.stderr, flush=True)

    print(cpu_flags_line())
    print(f"{len(items)} questions of {args.gold.name}, each after one of the {len(offs)} off-topic questions of "
          f"{args.dialogues.name}; {time.time() - t0:.0f} s")
    after = [r for r in rows if r["off_abstained"]]
    print(f"\nAfter an off-topic question that abstained ({len(after)} conversations)\n")
    print(table(after))
    answered = [r for r in rows if not r["off_abstained"]]
    if answered:
        print(f"\nAfter an off-topic question that was answered ({len(answered)} conversations)\n")
        print(table(answered))
    changed = [r for r in after if r["kept"] != r["first"] or r["kept_abstained"] != r["first_abstained"]]
    if changed:
        print("\nAfter an abstention, answered otherwise than as a first turn:\n")
        for r in changed:
            print(f"- {r['id']} (after “{r['off_topic']}”), read {r['reading']}: {r['kept']} against {r['first']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
