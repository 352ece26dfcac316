"""Small talk in a conversation: "thanks" after an answer, and the turns after it.

Two measures, each run with small talk recognised (rag.small_talk.asks_nothing, as shipped)
and without it (the same code, the check switched off), over the dialogue gold set:

1. each dialogue's first question, then a small-talk message of eval/fit_small_talk.py's
   HELD_OUT (taken in turn; none of them is a prototype): is it answered with a citation?
2. each dialogue with such a message inserted after its first turn: are the later turns
   (follow-ups, switches, off-topic turns) answered as well as without it? Small talk
   should leave the conversation where it was.

    python eval/bench_small_talk.py [--dialogues FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import rag.answer
import rag.conversation
from rag.config import Settings
from rag.conversation import reply
from rag.engine import Engine
from rag.evaluation.bench import HELD_OUT
from rag.evaluation.dialogues import format_table, load_dialogues, score_turn
from rag.runtime import cpu_flags_line

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def small_talk(on: bool):
    """Small talk recognised as shipped (on), or never (off)."""
    if on:
        yield
        return
    saved = rag.answer.asks_nothing, rag.conversation.asks_nothing
    rag.answer.asks_nothing = rag.conversation.asks_nothing = lambda *a, **kw: False
    try:
        yield
    finally:
        rag.answer.asks_nothing, rag.conversation.asks_nothing = saved


def run(engine, dialogues, on: bool):
    index, embedder, settings = engine.index, engine.embedder, engine.settings
    answered, records = [], []
    with small_talk(on):
        for i, d in enumerate(dialogues):
            message = HELD_OUT[i % len(HELD_OUT)]
            first = reply(index, embedder, d.turns[0].item.question, None, settings)
            records.append(score_turn(d, 1, first, 0.0))
            chat = reply(index, embedder, message, first.context(), settings)
            answered.append((message, not chat.answer.abstained, chat.answer.small_talk))
            previous = chat.context()
            for n in range(2, len(d.turns) + 1):
                t0 = time.perf_counter()
                r = reply(index, embedder, d.turns[n - 1].item.question, previous, settings)
                records.append(score_turn(d, n, r, (time.perf_counter() - t0) * 1000))
                previous = r.context()
    return answered, records


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dialogues", type=Path, default=ROOT / "eval" / "gold" / "dialogues.jsonl")
    args = ap.parse_args()
    t0 = time.time()
    settings = Settings.from_env()
    engine = Engine(settings).warm_up()
    dialogues = load_dialogues(args.dialogues, settings.project_root)
    runs = {on: run(engine, dialogues, on) for on in (False, True)}
    print(cpu_flags_line())
    print(f"{len(dialogues)} dialogues, a small-talk message after each first turn; {time.time() - t0:.0f} s\n")
    print("| small talk | messages answered with a citation | taken for small talk |")
    print("|---|---|---|")
    for on, (answered, _) in runs.items():
        print(f"| {'recognised' if on else 'not recognised (before)'} | {sum(a for _, a, _ in answered)} of "
              f"{len(answered)} | {sum(s for _, _, s in answered)} |")
    for on, (_, records) in runs.items():
        print(f"\nThe dialogues' turns with the message inserted after the first, small talk "
              f"{'recognised' if on else 'not recognised'}:\n")
        print(format_table(records))
    answered = runs[True][0]
    missed = sorted({m for m, a, _ in answered if a})
    if missed:
        print("\nStill answered: " + ", ".join(missed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
