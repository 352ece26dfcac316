"""Multi-turn evaluation: conversations asked turn by turn, as the chat app asks them.

A dialogue file holds one JSON object per line:

    {"id": "dlg-fa-01", "turns": [
      {"question": "…", "type": "first", "lang": "fa", "answers": ["…"], "sources": ["corpus/…"]},
      {"question": "…", "type": "follow-up", "form": "ellipsis", "lang": "fa", "answers": ["…"], "sources": ["corpus/…"]},
      {"question": "…", "type": "off-topic", "lang": "en", "answers": [], "sources": []}],
     "notes": "…"}

Turn types: `first` (the first turn, and only it), `follow-up` (needs the previous turn;
`form`: `ellipsis` or `pronoun`), `switch` (a new, self-contained question on another
topic), `off-topic` (nothing in the corpus answers it: answers and sources empty).

Each turn is answered by `rag.conversation.reply` with the previous turn's reply as its
context — the system's own previous reply, not the gold one, so a wrong turn weighs on
the next as it would for a user. Reported per turn type (and follow-up form):
containment of a gold answer in the whole answer and in its first sentence, citation
precision, abstention (off-topic turns that abstain; answerable turns that wrongly
abstain), the reading kept (a follow-up should be read in context, a switch or an
off-topic turn alone), and for switches whether the answer cites a document of the
previous topic (a gold source of the previous turn that is not one of this turn's).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rag.conversation import Reply, reply
from rag.evaluation.gold import LANGS, GoldError, GoldItem, _gold_item, jsonl_records, unique_ids
from rag.metrics import citation_precision, containment, mean

TYPES = ("first", "follow-up", "switch", "off-topic")
FORMS = ("ellipsis", "pronoun")
TURN_FIELDS = ("question", "type", "form", "lang", "answers", "sources", "notes")
EXPECTED_READING = {"follow-up": "in-context", "switch": "alone", "off-topic": "alone"}


@dataclass(frozen=True)
class DialogueTurn:
    item: GoldItem  # question, language, answers, sources and their document ids
    type: str
    form: str = ""  # follow-ups: ellipsis or pronoun


@dataclass(frozen=True)
class Dialogue:
    id: str
    turns: tuple[DialogueTurn, ...]
    notes: str = ""


def load_dialogues(path: Path | str, project_root: Path | str) -> list[Dialogue]:
    """Dialogues of a JSONL file; every problem raises GoldError naming the file and line."""
    path = Path(path)
    root = Path(project_root).resolve()
    resolved: dict[str, tuple[str, ...]] = {}
    out = unique_ids([(where, _dialogue(rec, where, root, resolved)) for where, rec in jsonl_records(path, "dialogue")])
    if not out:
        raise GoldError(f"{path}: no dialogues")
    return out


def _dialogue(rec, where: str, root: Path, resolved: dict) -> Dialogue:
    if not isinstance(rec, dict) or set(rec) - {"id", "turns", "notes"} or "id" not in rec or "turns" not in rec:
        raise GoldError(f"{where}: a line must be an object with 'id', 'turns' and optionally 'notes'")
    if not isinstance(rec["id"], str) or not rec["id"].strip():
        raise GoldError(f"{where}: 'id' must be a non-empty string")
    turns = rec["turns"]
    if not isinstance(turns, list) or len(turns) < 2:
        raise GoldError(f"{where}: 'turns' must be a list of at least two turns")
    out = []
    for t, turn in enumerate(turns, start=1):
        at = f"{where} turn {t}"
        if not isinstance(turn, dict):
            raise GoldError(f"{at}: a turn must be an object")
        unknown = sorted(set(turn) - set(TURN_FIELDS))
        if unknown:
            raise GoldError(f"{at}: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(TURN_FIELDS)})")
        kind, form = turn.get("type"), turn.get("form", "")
        if kind not in TYPES:
            raise GoldError(f"{at}: 'type' must be one of {', '.join(TYPES)}, not {kind!r}")
        if (kind == "first") != (t == 1):
            raise GoldError(f"{at}: the first turn, and only it, has type 'first'")
        if kind == "follow-up" and form not in FORMS:
            raise GoldError(f"{at}: a follow-up needs 'form': {' or '.join(FORMS)}")
        if kind != "follow-up" and form:
            raise GoldError(f"{at}: only follow-ups have a 'form'")
        fields = {k: v for k, v in turn.items() if k not in ("type", "form")}
        item = _gold_item(fields | {"id": f"{rec['id']}#{t}"}, at, root, resolved)
        if (kind == "off-topic") == item.answerable:
            raise GoldError(f"{at}: an off-topic turn, and only it, has no answers")
        out.append(DialogueTurn(item, kind, form))
    return Dialogue(rec["id"], tuple(out), str(rec.get("notes", "")))


@dataclass(frozen=True)
class TurnRecord:
    dialogue: str
    n: int  # 1-based turn number
    turn: DialogueTurn
    reply: Reply
    latency_ms: float
    containment: float | None  # None for off-topic turns
    first_containment: float | None
    citation_precision: float | None  # None when nothing is cited or the turn is off-topic
    cites_previous_topic: bool | None  # switches only
    reading_ok: bool | None  # None on first turns

    @property
    def abstained(self) -> bool:
        return self.reply.answer.abstained


@dataclass(frozen=True)
class TurnMetrics:
    turns: int
    containment: float | None
    first_containment: float | None
    citation_precision: float | None
    abstained: float | None  # share of turns that abstained
    wrong_abstentions: float | None  # share of answerable turns that abstained
    reading_accuracy: float | None
    cites_previous_topic: float | None
    answer_chars: float | None

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in dataclasses.asdict(self).items()}


def score_turn(d: Dialogue, n: int, r: Reply, ms: float) -> TurnRecord:
    turn = d.turns[n - 1]
    it, ans = turn.item, r.answer
    text = " ".join(ans.sentences)
    cited = [c.doc_id for c in ans.citations]
    previous_topic = None
    if turn.type == "switch":
        old = set(d.turns[n - 2].item.doc_ids) - set(it.doc_ids)
        previous_topic = any(c in old for c in cited)
    expected = EXPECTED_READING.get(turn.type)
    return TurnRecord(
        d.id, n, turn, r, ms,
        containment(text, it.answers) if it.answerable else None,
        (containment(ans.sentences[0], it.answers) if ans.sentences else 0.0) if it.answerable else None,
        citation_precision(cited, set(it.doc_ids)) if it.answerable else None,
        previous_topic, None if expected is None else r.reading == expected)


def summarize_turns(records: list[TurnRecord]) -> TurnMetrics:
    answerable = [r for r in records if r.turn.item.answerable]
    return TurnMetrics(
        len(records),
        mean(r.containment for r in answerable), mean(r.first_containment for r in answerable),
        mean(r.citation_precision for r in answerable),
        mean(float(r.abstained) for r in records) if records else None,
        mean(float(r.abstained) for r in answerable) if answerable else None,
        mean(None if r.reading_ok is None else float(r.reading_ok) for r in records),
        mean(None if r.cites_previous_topic is None else float(r.cites_previous_topic) for r in records),
        mean(None if r.abstained else float(sum(len(s) for s in r.reply.answer.sentences)) for r in answerable))


def groups(records: list[TurnRecord]) -> dict[str, list[TurnRecord]]:
    """Records by turn type and follow-up form, plus all turns and cross-lingual turns."""
    out = {"all": records}
    for t in TYPES:
        out[t] = [r for r in records if r.turn.type == t]
        if t == "follow-up":
            for f in FORMS:
                out[f"follow-up: {f}"] = [r for r in records if r.turn.type == t and r.turn.form == f]
    out["cross-lingual (answerable)"] = [r for r in records if r.turn.item.answerable and r.reply.answer.pair
                                         and r.reply.answer.pair.split(">")[0] != r.reply.answer.pair.split(">")[1]]
    for lang in LANGS:
        sel = [r for r in records if r.turn.item.lang == lang]
        if sel:
            out[f"question in {lang}"] = sel
    return {k: v for k, v in out.items() if v}


def run_dialogues(engine, dialogues: list[Dialogue], progress: bool = True, mode: str | None = None,
                  k: int | None = None, model="shipped") -> list[TurnRecord]:
    """Ask every dialogue turn by turn; one record per turn. `model`: the follow-up model
    (rag.conversation.reply)."""
    index = engine.index
    for d in dialogues:
        for t in d.turns:
            if any(i not in index.documents for i in t.item.doc_ids):
                raise GoldError(f"{t.item.origin}: a gold document of {', '.join(t.item.sources)} is not in the index at "
                                f"{engine.settings.index_dir}: rebuild it with `rag index`")
    engine.warm_up()
    from tqdm import tqdm

    records = []
    with tqdm(total=sum(len(d.turns) for d in dialogues), desc="dialogues", unit="turn", disable=not progress,
              file=sys.stderr) as bar:
        for d in dialogues:
            previous = None
            for n, _ in enumerate(d.turns, start=1):
                t0 = time.perf_counter()
                r = reply(index, engine.embedder, d.turns[n - 1].item.question, previous, engine.settings, mode, k,
                          model=model)
                records.append(score_turn(d, n, r, (time.perf_counter() - t0) * 1000))
                previous = r.context()
                bar.update()
    return records


def _cell(v, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


COLUMNS = (("turns", "turns"), ("containment", "answer"), ("first_containment", "first"),
           ("citation_precision", "cit. prec."), ("abstained", "abstained"), ("wrong_abstentions", "wrong abst."),
           ("reading_accuracy", "reading ok"), ("cites_previous_topic", "cites prev. topic"), ("answer_chars", "chars"))


def format_table(records: list[TurnRecord]) -> str:
    lines = ["| turns | " + " | ".join(h for _, h in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, recs in groups(records).items():
        m = summarize_turns(recs)
        cells = [str(m.turns)] + [_cell(getattr(m, f), 0 if f == "answer_chars" else 3) for f, _ in COLUMNS[1:]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(records: list[TurnRecord]) -> list[tuple[str, str, bool]]:
    """The issue's targets: (what, measured, met)."""
    g = groups(records)
    first = summarize_turns(g.get("first", [])).containment
    follow = summarize_turns(g.get("follow-up", [])).containment
    off = summarize_turns(g.get("off-topic", [])).abstained
    prev = summarize_turns(g.get("switch", [])).cites_previous_topic
    out = []
    if first is not None and follow is not None:
        out.append(("follow-up containment within .05 of first turns", f"{follow:.3f} vs {first:.3f}",
                    follow >= first - 0.05))
    if off is not None:
        out.append(("off-topic turns abstain ≥ .90", f"{off:.3f}", off >= 0.90))
    if prev is not None:
        out.append(("switches never cite the previous topic's documents", f"{prev:.3f}", prev == 0.0))
    return out


def record_dict(r: TurnRecord) -> dict:
    a = r.reply.answer
    j = r.reply.judgement
    return {"dialogue": r.dialogue, "turn": r.n, "type": r.turn.type, "form": r.turn.form,
            "question": r.turn.item.question, "lang": r.turn.item.lang, "gold_answers": list(r.turn.item.answers),
            "gold_sources": list(r.turn.item.sources), "reading": r.reply.reading, "query": r.reply.query,
            "answer": a.text, "abstained": a.abstained, "cited": [c.source for c in a.citations],
            "containment": r.containment, "first_containment": r.first_containment,
            "citation_precision": r.citation_precision, "cites_previous_topic": r.cites_previous_topic,
            "reading_ok": r.reading_ok, "latency_ms": round(r.latency_ms, 1),
            "judgement": None if j is None else {k: (round(v, 4) if isinstance(v, float) else v)
                                                 for k, v in dataclasses.asdict(j).items()}}


def write_dialogue_report(records: list[TurnRecord], out: Path, info: dict) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    metrics = {name: summarize_turns(recs).to_dict() for name, recs in groups(records).items()}
    results = out / "results.json"
    results.write_text(json.dumps({"info": info, "metrics": metrics,
                                   "targets": [{"target": t, "measured": m, "met": ok} for t, m, ok in targets(records)],
                                   "turns": [record_dict(r) for r in records]}, ensure_ascii=False, indent=1), "utf-8")
    md = ["# Dialogue evaluation", "", f"- file: `{info.get('path')}`, {info.get('dialogues')} dialogues, "
          f"{len(records)} turns", "", format_table(records), "", "## Targets", ""]
    md += [f"- {'met' if ok else 'NOT met'}: {t} — {m}" for t, m, ok in targets(records)]
    md += ["", "## Turns that missed", ""]
    for r in records:
        missed = (r.containment == 0.0) or (r.turn.type == "off-topic" and not r.abstained) or r.reading_ok is False
        if missed:
            md.append(f"- `{r.dialogue}` turn {r.n} ({r.turn.type}{', ' + r.turn.form if r.turn.form else ''}), "
                      f"read {r.reply.reading}: {r.turn.item.question} → "
                      + ("abstained" if r.abstained else r.reply.answer.text[:200].replace("\n", " ")))
    report = out / "report.md"
    report.write_text("\n".join(md) + "\n", "utf-8")
    return [results, report]
