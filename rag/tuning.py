"""The values fitted for an embedding model, read from rag/calibration.json into one frozen object.

Every fitted value the answerer reads (the sentence scorer's weights and threshold, the
judge's threshold, the follow-up model, the lean, small talk) lives in rag/calibration.json
under the model's id, beside the sha256 of the weights they were fitted for
("weights_sha256"); the judge's values also name the sha256 of rag/verifier.npz (the judge's
adapters and head) they were fitted with. `shipped(model, sha)` reads them once;
values fitted for other weights are not applied, and a warning says so. Each value has one
writer, the eval/fit_*.py script named in its "source", through `write`.

An index folder holds at most one explicit override: the abstention threshold that
`rag eval --calibrate` chose on the user's own gold set (index/calibration.json, read by
rag.index). `Tuning.with_override` applies it on top of the shipped values, so a later refit
of rag/calibration.json is never hidden by a copy of it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

SHIPPED = Path(__file__).with_name("calibration.json")
VERIFIER_WEIGHTS = Path(__file__).with_name("verifier.npz")
OVERRIDES = ("threshold", "judge_threshold")  # what an index folder may override
log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class Tuning:
    """The fitted values in force for one model. Frozen: a measurement without one part (or a
    test with other values) makes another with `replace`, and answers with it; nothing shared
    is changed."""

    model: str = ""
    values: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    override: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    _built: dict = field(default_factory=dict, repr=False)  # parts built from their values (`part`)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __contains__(self, key: str) -> bool:
        return key in self.values

    @property
    def threshold(self) -> float | None:
        """The sentence scorer's abstention threshold: the index's override, else the fitted one."""
        return self.override.get("threshold", self.values.get("threshold"))

    @property
    def judge_threshold(self) -> float | None:
        """The threshold on the judge's log-odds an index sets (`rag eval --calibrate`), if any."""
        return self.override.get("judge_threshold")

    def part(self, key: str, build: Callable[[dict], T]) -> T | None:
        """The fitted part `key` built once from its values by `build` (e.g. rag.conversation.FollowUpModel.from_dict);
        None where none is fitted for this model."""
        if key not in self._built:
            spec = self.values.get(key)
            self._built[key] = build(spec) if spec else None
        return self._built[key]

    def replace(self, **values: Any) -> Tuning:
        """Another Tuning with these values (None leaves a part out), the same override."""
        merged = {k: v for k, v in {**self.values, **values}.items() if v is not None}
        return Tuning(self.model, MappingProxyType(merged), self.override)

    def with_override(self, override: Mapping[str, Any]) -> Tuning:
        """These values under an index's override (only OVERRIDES are taken from it)."""
        kept = {k: float(override[k]) for k in OVERRIDES if override.get(k) is not None}
        return Tuning(self.model, self.values, MappingProxyType(kept)) if kept else self


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=8)
def shipped(model: str, weights_sha256: str = "", path: Path | None = None) -> Tuning:
    """The values fitted for `model` in `path` (default rag/calibration.json; empty where none
    are), unless they were fitted for other weights than `weights_sha256` ("" = not checked);
    the judge's only with the weights rag/verifier.npz now holds."""
    path = path or SHIPPED
    entry = dict(json.loads(Path(path).read_text("utf-8")).get(model) or {})
    fitted_for = entry.get("weights_sha256", "")
    if weights_sha256 and fitted_for and fitted_for != weights_sha256:
        log.warning("the values in %s were fitted for other weights of %s (sha256 %s…, these are %s…): "
                    "answering without them until they are refitted", path, model, fitted_for[:12], weights_sha256[:12])
        return Tuning(model)
    judge = entry.get("judge")
    if judge and judge.get("weights_sha256") != _verifier_sha():
        log.warning("the judge's values in %s were fitted for other judge weights than %s: the judge "
                    "is not used until they are refitted (python eval/fit_judge.py --write-calibration)",
                    path, VERIFIER_WEIGHTS)
        entry.pop("judge")
    return Tuning(model, MappingProxyType(entry))


@functools.lru_cache(maxsize=1)
def _verifier_sha() -> str:
    return file_sha256(VERIFIER_WEIGHTS) if VERIFIER_WEIGHTS.exists() else ""


def write(model: str, key: str, value: Any, weights_sha256: str, path: Path | None = None) -> Path:
    """Store one fitted value (a number, or a dict of a part's values, merged into the part's
    other values) for `model`,
    fitted for the weights `weights_sha256`; dated, written atomically. The one way values get
    into rag/calibration.json."""
    path = Path(path or SHIPPED)
    data = json.loads(path.read_text("utf-8"))
    entry = data.setdefault(model, {})
    if entry.get("weights_sha256") not in (None, weights_sha256):
        log.warning("%s's other values in %s were fitted for other weights (sha256 %s…): refit them too",
                    model, path, entry["weights_sha256"][:12])
    entry["weights_sha256"] = weights_sha256
    if isinstance(value, dict):
        value = {**(entry.get(key) or {}), **value, "calibrated_at": time.strftime("%Y-%m-%d")}
    entry[key] = value
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8")
    os.replace(tmp, path)
    shipped.cache_clear()
    return path
