"""The one sampling rule of the evaluation loaders (SQuAD contexts, distractors)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any


def sample(values: list, limit: int | None, seed: int, keep: Callable[[Any], Any] = lambda v: v) -> list:
    """`keep(v)` of a random sample (fixed by `seed`) of `limit` values, in the values' order;
    of every value without a limit (or with one of len(values) or more).

    A value that `keep` turns into None is left out and replaced by a further draw, so that
    `limit` are kept while the values last. The first draw is
    `random.Random(seed).sample(range(len(values)), limit)`: cached evaluation indexes are
    keyed by what it picks, so changing the rule rebuilds them.
    """
    if limit is None or limit >= len(values):
        return [k for v in values if (k := keep(v)) is not None]
    rng = random.Random(seed)
    left = list(range(len(values)))
    kept: dict[int, Any] = {}
    while len(kept) < limit and left:
        draw = sorted(rng.sample(left, min(limit - len(kept), len(left))))
        for i in draw:
            if (k := keep(values[i])) is not None:
                kept[i] = k
        drawn = set(draw)
        left = [i for i in left if i not in drawn]
    return [kept[i] for i in sorted(kept)]
