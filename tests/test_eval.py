"""Gold loaders, the evaluation runner, calibration, reports and `rag eval`.

Fast tests use the tiny corpus with the hash embedder; the CI gate runs the seed gold
set with the real model. Tests on the shared data sets skip when ../shared/data (or
$RAG_SHARED_DATA) is absent.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rag.cli import main
from rag.config import MODES, Settings
from rag.corpus import load_corpus
from rag.embedding import HashEmbedder
from rag.engine import Engine
from rag.evaluation import (
    GoldError,
    cache_dir,
    calibrate,
    evaluate,
    format_table,
    load_distractors,
    load_gold,
    load_squad,
    resolve_source,
    store_calibration,
    write_report,
)
from rag.evaluation.sampling import sample
from rag.index import Index
from tests.conftest import answers_not_in_sources

ROOT = Path(__file__).resolve().parent.parent
SEED_GOLD = ROOT / "eval" / "gold" / "seed_qa.jsonl"

TINY_GOLD = [
    {"id": "fa-1", "question": "تماس تلفنی پوتین و ترامپ چقدر طول کشید؟", "lang": "fa", "answers": ["۵۰ دقیقه"],
     "sources": ["corpus/fa_call.txt"]},
    {"id": "ar-1", "question": "أين التقى كيري وظريف؟", "lang": "ar", "answers": ["نيويورك"],
     "sources": ["corpus/ar_meeting.txt"], "notes": "monolingual ar"},
    {"id": "en-1", "question": "How long was the Geneva airport closed?", "lang": "en", "answers": ["three hours"],
     "sources": ["corpus/en_weather.md"]},
    {"id": "en-2", "question": "What is the capital of Australia?", "lang": "en", "answers": [], "sources": []},
]


def write_gold(path: Path, records: list[dict] | None = None) -> Path:
    records = TINY_GOLD if records is None else records
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    return path


def shared_data(*parts: str) -> Path:
    """A path under the shared data sets, or skip the test when they are absent."""
    base = Path(os.environ.get("RAG_SHARED_DATA") or ROOT.parent / "shared" / "data")
    path = base.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture
def cli_env(monkeypatch):
    """Run `rag` with only the settings a test gives (no RAG_* from the environment)."""
    for f in dataclasses.fields(Settings):
        monkeypatch.delenv(f"RAG_{f.name.upper()}", raising=False)

    def use(root: Path) -> None:
        monkeypatch.setenv("RAG_PROJECT_ROOT", str(root))
        monkeypatch.chdir(root)

    return use


# ================================================================ gold files
def test_seed_gold_is_valid_and_every_answer_occurs_in_a_source():
    items = load_gold(SEED_GOLD, ROOT)
    assert len(items) >= 40
    assert len({i.id for i in items}) == len(items)
    assert {i.lang for i in items} == {"fa", "ar", "en"}
    assert any(not i.answerable for i in items) and any(i.answerable for i in items)
    for item in items:
        if not item.answerable:
            assert item.sources == () and item.doc_ids == ()
    assert answers_not_in_sources(items, ROOT) == []


def test_load_gold_resolves_sources_to_document_ids(tiny_project):
    items = load_gold(write_gold(tiny_project.project_root / "gold.jsonl"), tiny_project.project_root)
    docs = {d.source: d.id for d in load_corpus(tiny_project.corpus_dir, tiny_project.project_root).documents}
    assert [i.id for i in items] == ["fa-1", "ar-1", "en-1", "en-2"]
    assert items[0].doc_ids == (docs["corpus/fa_call.txt"],)
    assert items[1].notes == "monolingual ar" and items[1].answers == ("نيويورك",)
    assert items[3].answerable is False and items[3].doc_ids == ()
    assert items[2].origin.endswith("gold.jsonl line 3")


def test_gold_source_may_name_one_line_of_a_jsonl_file(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "news.jsonl").write_text(
        json.dumps({"text": "First story about Geneva."}) + "\n" + json.dumps({"text": "Second story about Muscat."}) + "\n",
        "utf-8")
    gold = write_gold(tmp_path / "g.jsonl", [
        {"id": "q", "question": "Where?", "lang": "en", "answers": ["Muscat"], "sources": ["corpus/news.jsonl#2"]}])
    [item] = load_gold(gold, tmp_path)
    [doc] = resolve_source("corpus/news.jsonl#2", tmp_path)
    assert item.doc_ids == (doc.id,) and "Muscat" in doc.text


GOOD = {"id": "q2", "question": "Where?", "lang": "en", "answers": ["Geneva"], "sources": ["corpus/en_weather.md"]}


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": "q2", "question": "Where?",', "invalid JSON"),
        ('["not", "an", "object"]', "JSON object"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "answers"}), "missing field(s) answers"),
        (json.dumps(GOOD | {"note": "typo"}), "unknown field(s) note"),
        (json.dumps(GOOD | {"id": ""}), "'id' must be a non-empty string"),
        (json.dumps(GOOD | {"id": 7}), "'id' must be a non-empty string"),
        (json.dumps(GOOD | {"lang": "pe"}), "'lang' must be one of"),
        (json.dumps(GOOD | {"answers": "Geneva"}), "'answers' must be a list"),
        (json.dumps(GOOD | {"answers": [""]}), "'answers' must be a list of non-empty strings"),
        (json.dumps(GOOD | {"sources": []}), "both be empty"),
        (json.dumps(GOOD | {"answers": []}), "both be empty"),
        (json.dumps(GOOD | {"sources": ["corpus/missing.txt"]}), "source 'corpus/missing.txt' not found"),
        (json.dumps(GOOD | {"sources": ["corpus/fa_call.txt#3"]}), "holds no readable document"),
        (json.dumps(GOOD | {"id": "fa-1"}), "duplicate id 'fa-1' (also on line 1)"),
        (json.dumps(GOOD | {"notes": 3}), "'notes' must be a string"),
    ],
)
def test_malformed_gold_line_is_an_error_naming_file_and_line(tiny_project, line, message):
    path = tiny_project.project_root / "bad.jsonl"
    path.write_text(json.dumps(TINY_GOLD[0], ensure_ascii=False) + "\n\n" + line + "\n", "utf-8")
    with pytest.raises(GoldError) as e:
        load_gold(path, tiny_project.project_root)
    assert f"{path} line 3: " in str(e.value)
    assert message in str(e.value)


def test_empty_or_missing_gold_file(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n", "utf-8")
    with pytest.raises(GoldError, match="no questions"):
        load_gold(tmp_path / "empty.jsonl", tmp_path)
    with pytest.raises(FileNotFoundError, match="gold file not found"):
        load_gold(tmp_path / "nope.jsonl", tmp_path)


# ================================================================ SQuAD
def squad_file(path: Path) -> Path:
    ctx_fa = "پایتخت اسپانیا مادرید است. رئال مادرید در این شهر است."
    ctx_ar = "التقى كيري وظريف في نيويورك أمس الأحد. واستمر الاجتماع نحو ساعة."
    ctx_en = "Geneva had heavy snow on Friday. The airport closed for three hours."
    data = {"version": "v2.0", "data": [
        {"title": "Spain", "paragraphs": [
            {"context": ctx_fa, "qas": [
                {"id": 1, "question": "پایتخت اسپانیا کجاست؟", "is_impossible": False,
                 "answers": [{"text": "مادرید", "answer_start": 15}, {"text": "مادرید", "answer_start": 15}]},
                {"id": 2, "question": "بارسلونا چند بار قهرمان شده؟", "is_impossible": True, "answers": []}]},
            {"context": ctx_ar, "qas": [
                {"id": "a1", "question": "كم استمر الاجتماع؟", "answers": [{"text": "نحو ساعة", "answer_start": 50}]}]}]},
        {"title": "14baa11b-e23b-4961-b81f-d34beb944820", "paragraphs": [
            {"context": ctx_en, "qas": [
                {"id": "e1", "question": "How long was the airport closed?",
                 "answers": [{"text": "three hours", "answer_start": 55}, {"text": "for three hours", "answer_start": 51}]}]},
            {"context": ctx_fa, "qas": [  # the same context again: one document
                {"id": 3, "question": "رئال مادرید در کدام شهر است؟", "answers": [{"text": "مادرید", "answer_start": 15}]}]}]},
    ]}
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    return path


def test_load_squad_builds_distinct_contexts_and_gold_items(tmp_path):
    docs, items = load_squad(squad_file(tmp_path / "mini.json"))
    assert len(docs) == 3  # the repeated Persian context is one document
    by_id = {i.id: i for i in items}
    assert list(by_id) == ["1", "2", "a1", "e1", "3"]
    fa = next(d for d in docs if "مادرید" in d.text)
    assert by_id["1"].answers == ("مادرید",) and by_id["1"].doc_ids == (fa.id,)
    assert by_id["3"].doc_ids == (fa.id,)
    assert by_id["2"].answerable is False and by_id["2"].doc_ids == () and by_id["2"].sources == ()
    assert by_id["e1"].answers == ("three hours", "for three hours")
    assert [by_id[i].lang for i in ("1", "a1", "e1")] == ["fa", "ar", "en"]
    assert fa.source == "mini.json#0.0" and fa.title == "Spain"
    en = next(d for d in docs if "Geneva" in d.text)
    assert not en.title.startswith("14baa11b")  # a uuid is no title


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"data": [', "line 1: invalid JSON"),
        ('{"version": "1.1"}', "not SQuAD JSON"),
        ('{"data": [{"title": "x"}]}', "data[0]: an article needs a list 'paragraphs'"),
        ('{"data": [{"paragraphs": [{"qas": []}]}]}', "data[0].paragraphs[0]: a paragraph needs a string 'context'"),
        ('{"data": [{"paragraphs": [{"context": "Some text.", "qas": [{"id": 1, "question": "Q?", "answers": []}]}]}]}',
         "data[0].paragraphs[0].qas[0]: no answers, and not marked is_impossible"),
        ('{"data": [{"paragraphs": [{"context": "Some text.", "qas": [{"question": "Q?"}]}]}]}', "needs an 'id'"),
        ('{"data": [{"paragraphs": [{"context": "Some text.", "qas": [{"id": 1, "question": "Q?", "answers": ["x"]}]}]}]}',
         "each answer needs a string 'text'"),
        ('{"data": []}', "no questions"),
    ],
)
def test_malformed_squad_is_an_error_naming_the_place(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content, "utf-8")
    with pytest.raises(GoldError) as e:
        load_squad(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_load_squad_on_the_shared_persian_set():
    docs, items = load_squad(shared_data("qa", "persianqa", "pqa_test.json"))
    assert len(items) == 930
    assert sum(not i.answerable for i in items) == 279
    assert len(docs) == 93
    ids = {d.id for d in docs}
    assert all(set(i.doc_ids) <= ids for i in items)


def test_load_squad_deduplicates_shared_parsinlu_contexts():
    docs, items = load_squad(shared_data("qa", "parsinlu_rc", "train.json"))
    assert len(items) == 600 and len(docs) == 593


def test_load_squad_sample_of_paragraphs_with_their_questions(tmp_path):
    path = squad_file(tmp_path / "mini.json")
    all_docs, all_items = load_squad(path)
    docs, items = load_squad(path, limit=2, seed=1)
    paragraph = lambda item: item.origin.split(".qas")[0]  # noqa: E731
    chosen = {paragraph(i) for i in items}
    assert len(chosen) == 2
    assert items == [i for i in all_items if paragraph(i) in chosen]  # all their questions, in file order
    assert {d for i in items for d in i.doc_ids} <= {d.id for d in docs} <= {d.id for d in all_docs}
    assert load_squad(path, limit=2, seed=1) == (docs, items)
    assert load_squad(path, limit=5) == load_squad(path) == (all_docs, all_items)


def test_sample_keeps_its_first_draw_and_replaces_rejected_values():
    values = list(range(100))
    # the first draw is pinned: cached evaluation indexes are keyed by what it picks
    first = sample(values, 7, 3)
    assert first == sorted(random.Random(3).sample(range(100), 7))
    odd = sample(values, 7, 3, keep=lambda v: v if v % 2 else None)
    assert len(odd) == 7 and all(v % 2 for v in odd) and odd == sorted(odd)
    assert {v for v in first if v % 2} <= set(odd)
    assert sample(values, 60, 0, keep=lambda v: v if v < 10 else None) == list(range(10))  # runs out
    assert sample(values, None, 0) == values == sample(values, 100, 5)
    assert sample(values, None, 0, keep=lambda v: -v if v < 3 else None) == [0, -1, -2]


# ================================================================ distractors
def test_distractors_from_a_corpus_folder(tmp_path):
    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "a.txt").write_text("Distractor one about football.", "utf-8")
    (folder / "b.md").write_text("# Two\nDistractor two about cooking.", "utf-8")
    docs = load_distractors(folder)
    assert sorted(d.source for d in docs) == ["extra/a.txt", "extra/b.md"]


def news_files(folder: Path) -> Path:
    folder.mkdir()
    fars = [{"title": f"خبر {i}", "abstract": "خلاصه خبر", "paragraphs": [f"بند اول خبر شماره {i}.", "بند دوم."],
             "link": f"https://example.org/{i}", "tags": []} for i in range(5)]
    (folder / "fars-news-1.json").write_text(json.dumps(fars, ensure_ascii=False), "utf-8")
    saudi = [{"title": f"عنوان {i}", "content": f"محتوى المقال رقم {i} في الرياض.", "url": f"https://example.sa/{i}",
              "date_extracted": "2015-07-21 02:51:32"} for i in range(4)]
    with zipfile.ZipFile(folder / "2015-07-21.zip", "w") as z:
        z.writestr("2015-07-21.json", json.dumps(saudi, ensure_ascii=False))
    (folder / "README.md").write_text("# not an article", "utf-8")
    return folder


def test_distractors_from_news_json_and_zip_files(tmp_path):
    folder = news_files(tmp_path / "news")
    docs = load_distractors(folder)
    assert len(docs) == 9  # README.md is ignored in a folder of news files
    fars = [d for d in docs if d.source.startswith("news/fars-news-1.json#")]
    assert len(fars) == 5
    assert fars[0].title == "خبر 0" and "بند اول خبر شماره 0." in fars[0].text and "خلاصه خبر" in fars[0].text
    assert fars[0].url == "https://example.org/0"
    saudi = [d for d in docs if d.source.startswith("news/2015-07-21.zip/2015-07-21.json#")]
    assert len(saudi) == 4 and saudi[1].lang == "ar" and saudi[1].date == "2015-07-21T02:51:32"  # dates are normalised to ISO 8601
    assert len(load_distractors(folder / "2015-07-21.zip")) == 4
    assert len(load_distractors(folder / "fars-news-1.json")) == 5


def test_distractor_sample_is_deterministic(tmp_path):
    folder = news_files(tmp_path / "news")
    a = load_distractors(folder, limit=3, seed=0)
    assert len(a) == 3
    assert [d.id for d in a] == [d.id for d in load_distractors(folder, limit=3, seed=0)]
    assert {d.id for d in a} <= {d.id for d in load_distractors(folder)}
    assert len(load_distractors(folder, limit=100)) == 9


def test_bad_distractor_files_are_errors(tmp_path):
    (tmp_path / "x.json").write_text('{"not": "a list"}', "utf-8")
    with pytest.raises(ValueError, match="x.json: expected a JSON list"):
        load_distractors(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("[{", "utf-8")
    with pytest.raises(ValueError, match="y.json is not UTF-8 JSON"):
        load_distractors(tmp_path / "y.json")
    with pytest.raises(FileNotFoundError):
        load_distractors(tmp_path / "missing")


def test_distractor_leads_are_first_passages_without_the_title(tmp_path):
    folder = tmp_path / "news"
    folder.mkdir()
    body = [f"Paragraph {i} of the long story, with enough words to fill a passage." for i in range(40)]
    articles = [{"title": "Long story", "abstract": "A summary.", "paragraphs": body},
                {"title": "Short story", "paragraphs": ["Only a line."]}]
    (folder / "news.json").write_text(json.dumps(articles), "utf-8")
    whole = load_distractors(folder)
    assert whole[0].text.startswith("Long story\n\nA summary.\n\nParagraph 0") and len(whole[0].text) > 2000
    lead, short = load_distractors(folder, lead=True)
    assert (lead.title, lead.source) == ("Long story", whole[0].source)
    assert lead.text.startswith("A summary.\n\nParagraph 0") and len(lead.text) <= 800
    assert whole[0].text.removeprefix("Long story\n\n").startswith(lead.text)
    assert (short.title, short.text) == ("Short story", "Only a line.")
    assert load_distractors(folder, lead=True, min_chars=100) == [lead]


def test_distractor_sample_replaces_articles_it_cannot_use(tmp_path):
    folder = tmp_path / "news"
    folder.mkdir()
    articles = [{"title": f"t{i}", "content": f"Story {i}. " * (30 if i % 2 else 1)} for i in range(20)]
    articles += [{"content": "…"}, articles[1]]  # no text; a duplicate
    (folder / "news.json").write_text(json.dumps(articles), "utf-8")
    for seed in range(5):
        docs = load_distractors(folder, limit=5, seed=seed, min_chars=100)
        assert len(docs) == 5 and len({d.id for d in docs}) == 5 and all(len(d.text) >= 100 for d in docs)
    assert len(load_distractors(folder, limit=15, min_chars=100)) == 10  # all there are
    assert len(load_distractors(folder, limit=21)) == 20


def test_distractors_from_the_shared_news_corpora():
    fars = load_distractors(shared_data("corpora", "fars_news", "fars-news-1.json"), limit=20)
    assert len(fars) == 20 and all(d.source.startswith("fars-news-1.json#") for d in fars)
    assert all(d.title and d.text.startswith(d.title) for d in fars)
    saudi = load_distractors(shared_data("corpora", "saudinewsnet", "2015-07-21.zip"), limit=10, seed=1)
    assert len(saudi) == 10 and {d.lang for d in saudi} == {"ar"}
    leads = load_distractors(shared_data("corpora", "saudinewsnet", "2015-07-21.zip"), limit=10, lead=True, min_chars=201)
    assert len(leads) == 10 and all(201 <= len(d.text) <= 800 for d in leads)


# ================================================================ the scripts' shared helpers (rag/evaluation/bench.py)
@pytest.fixture(scope="module")
def bench():
    """rag.evaluation.bench: the pool and helpers that eval/bench_*.py and eval/fit_*.py share."""
    from rag.evaluation import bench

    return bench


def test_eval_scripts_are_sorted_and_documented():
    """eval/ holds bench_*.py (measure), fit_*.py and train_verifier.py (write shipped values);
    none reaches for another script through sys.path, and eval/README.md names each."""
    scripts = sorted(p.name for p in (ROOT / "eval").glob("*.py"))
    readme = (ROOT / "eval" / "README.md").read_text("utf-8")
    for name in scripts:
        assert name.startswith(("bench_", "fit_")) or name == "train_verifier.py", name
        text = (ROOT / "eval" / name).read_text("utf-8")
        assert "sys.path" not in text, name
        assert ("--write-calibration" in text) == name.startswith("fit_"), name  # only fits write rag/calibration.json
        assert f"`{name}`" in readme, f"eval/README.md does not describe {name}"


def test_bench_pool_comes_from_the_evaluation_loaders(bench):
    data = shared_data()
    docs, qs = bench.load_sets(data, max_contexts=3)
    assert len(docs) == 4 * 3 and {q.set for q in qs} == set(bench.SETS)
    assert {q.doc_id for q in qs if not q.impossible} <= {d.id for d in docs}
    news = bench.news_distractors(data, 4)
    assert [d.source.split("/")[0] for d in news] == ["fars_news"] * 4 + ["saudinewsnet"] * 4
    assert all(201 <= len(d.text) <= 800 for d in news)


def test_logistic_regression_reaches_the_regularised_optimum():
    from rag.fitting import logistic_regression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4)) * [0.1, 1.0, 3.0, 0.5]
    y = (rng.random(400) < 1 / (1 + np.exp(-(X @ [1.0, -2.0, 0.5, 3.0] + 1.5)))).astype(float)
    for C in (0.05, 1.0):
        w, b = logistic_regression(X, y, C=C)
        p = 1 / (1 + np.exp(-X @ w))
        assert b == 0.0 and np.abs(C * X.T @ (p - y) + w).max() < 1e-8  # the gradient of ½‖w‖² + C·Σ log-loss
        assert np.abs(w).max() > 0.1
        w, b = logistic_regression(X, y, C=C, intercept=True)
        p = 1 / (1 + np.exp(-(X @ w + b)))
        assert np.abs(C * X.T @ (p - y) + w).max() < 1e-8 and abs((p - y).sum()) < 1e-8  # the intercept is not shrunk
        assert b > 0.5


def test_pairwise_weights_learn_what_ranks_the_answer_first():
    from rag.fitting import pairwise_weights

    rng = np.random.default_rng(0)
    feats, labels = [], []
    for _ in range(200):  # 8 candidates per question; the answer has the highest feature 0, feature 1 is noise
        x = rng.normal(size=(8, 2))
        y = np.zeros(8, bool)
        y[np.argmax(x[:, 0])] = True
        feats.append(x)
        labels.append(y)
    feats.append(rng.normal(size=(5, 2)))  # a question without an answer among its candidates: skipped
    labels.append(np.zeros(5, bool))
    w = pairwise_weights(feats, labels)
    assert w[0] > 1.0 and abs(w[1]) < 0.3 * w[0]


# ================================================================ runner
def tiny_items(settings: Settings):
    return load_gold(write_gold(settings.project_root / "gold.jsonl"), settings.project_root)


def test_evaluate_records_and_metrics_per_mode_and_language(tiny_engine):
    items = tiny_items(tiny_engine.settings)
    run = evaluate(tiny_engine, items, MODES, progress=False)
    assert run.modes == MODES
    assert len(run.records) == len(items) * len(MODES)
    assert [r.item.id for r in run.records_for("dense")] == [i.id for i in items]
    for mode in MODES:
        assert list(run.metrics[mode]) == ["all", "fa", "ar", "en"]
        m = run.metrics[mode]["all"]
        assert (m.n, m.answerable, m.unanswerable) == (4, 3, 1)
        # each question's words appear in exactly one tiny document, in every mode
        assert m.recall_at_1 == m.recall_at_5 == m.mrr_at_10 == m.ndcg_at_10 == 1.0
        assert m.citation_precision == 1.0 and m.citation_recall == 1.0
        assert m.latency_p50_ms is not None and m.latency_p95_ms >= m.latency_p50_ms
        assert run.metrics[mode]["en"].containment == 1.0  # "three hours" is in the answer
    unanswerable = [r for r in run.records if not r.item.answerable]
    assert all(r.scores.recall_at_5 is None and r.scores.containment is None for r in unanswerable)
    # lexical finds nothing for the off-topic question and abstains; the others answer it
    lex = run.metrics["lexical"]["all"]
    assert (lex.abstention_precision, lex.abstention_recall, lex.wrong_abstention_rate) == (1.0, 1.0, 0.0)
    assert run.metrics["hybrid"]["all"].abstention_recall == 0.0
    assert run.threshold == tiny_engine.settings.abstain_threshold
    # aggregates are the means of the per-question scores
    hybrid = [r.scores.f1 for r in run.records_for("hybrid") if r.item.answerable]
    assert run.metrics["hybrid"]["all"].f1 == pytest.approx(sum(hybrid) / len(hybrid))


def test_evaluate_fails_clearly_when_a_gold_document_is_not_indexed(tiny_engine):
    root = tiny_engine.settings.project_root
    (root / "corpus" / "late.txt").write_text("Added after indexing: Muscat talks.", "utf-8")
    items = load_gold(write_gold(root / "g.jsonl", TINY_GOLD + [
        {"id": "late", "question": "Which talks?", "lang": "en", "answers": ["Muscat talks"], "sources": ["corpus/late.txt"]}]), root)
    with pytest.raises(GoldError, match=r"g\.jsonl line 5: a gold document of corpus/late\.txt is not in the index"):
        evaluate(tiny_engine, items, progress=False)


def test_evaluate_rejects_unknown_modes(tiny_engine):
    with pytest.raises(ValueError, match="modes must be among"):
        evaluate(tiny_engine, tiny_items(tiny_engine.settings), ("sparse",), progress=False)


def test_report_files(tiny_engine, tmp_path):
    run = evaluate(tiny_engine, tiny_items(tiny_engine.settings), MODES, progress=False)
    files = write_report(run, tmp_path / "out", tiny_engine.index, {"kind": "gold", "path": "gold.jsonl"})
    assert sorted(f.name for f in files) == ["evidence.png", "recall_at_k.png", "report.md", "results.json"]
    for png in ("evidence.png", "recall_at_k.png"):
        assert (tmp_path / "out" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((tmp_path / "out" / "results.json").read_text("utf-8"))
    assert results["index"]["model"]["id"] == "hash-256"
    assert results["settings"]["model"] == "hash-256"
    assert results["modes"] == list(MODES)
    assert len(results["records"]) == 12
    rec = next(r for r in results["records"] if r["id"] == "en-1" and r["mode"] == "hybrid")
    assert rec["gold_answers"] == ["three hours"] and rec["scores"]["containment"] == 1.0
    assert rec["retrieved"][0]["source"] == "corpus/en_weather.md" and rec["retrieved"][0]["gold"] is True
    assert rec["citations"][0]["gold"] is True and "three hours" in rec["answer"]
    assert results["metrics"]["lexical"]["all"]["abstention_f1"] == 1.0
    report = (tmp_path / "out" / "report.md").read_text("utf-8")
    assert "| hybrid | all | 4 | 3/1 |" in report
    assert "## Worst failures (hybrid)" in report and "**en-2** (en) What is the capital of Australia?" in report
    assert "![recall_at_k.png](recall_at_k.png)" in report
    table = format_table(run)
    assert len([line for line in table.splitlines() if line.startswith(MODES)]) == 12


@pytest.fixture
def no_matplotlib(monkeypatch):
    """matplotlib cannot be imported, as without the `eval` extra."""
    for name in ["matplotlib", *(m for m in list(sys.modules) if m.startswith("matplotlib."))]:
        monkeypatch.setitem(sys.modules, name, None)


def test_report_without_matplotlib_has_no_plots_and_says_why(tiny_engine, tmp_path, no_matplotlib):
    run = evaluate(tiny_engine, tiny_items(tiny_engine.settings), progress=False)
    files = write_report(run, tmp_path / "out", tiny_engine.index)
    assert sorted(f.name for f in files) == ["report.md", "results.json"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.md", "results.json"]
    report = (tmp_path / "out" / "report.md").read_text("utf-8")
    assert "Plots were skipped: matplotlib is not installed (pip install 'rag[eval]')." in report
    assert ".png" not in report


def test_calibration_is_stored_with_the_index_and_then_in_force(tiny_project):
    settings = dataclasses.replace(tiny_project, abstain_threshold=None)  # Settings.replace ignores None
    engine = Engine(settings, HashEmbedder(256))
    engine.build()
    items = tiny_items(settings)
    before = evaluate(engine, items, progress=False)
    assert before.threshold is None and before.metrics["hybrid"]["all"].abstention_recall == 0.0
    cal = calibrate(before)
    unanswerable = next(r.answer.evidence for r in before.records if not r.item.answerable)
    assert cal.threshold > unanswerable and cal.scores.f1 == 1.0
    stored = store_calibration(engine.index, cal, "gold.jsonl", "hybrid")
    assert set(stored) >= {"threshold", "f1", "precision", "recall", "n_answerable", "n_unanswerable", "source", "calibrated_at"}
    assert (stored["n_answerable"], stored["n_unanswerable"], stored["source"]) == (3, 1, "gold.jsonl")
    saved = json.loads((settings.index_dir / "calibration.json").read_text("utf-8"))
    assert saved["hash-256"]["threshold"] == cal.threshold
    assert Index.load(settings.index_dir, settings, HashEmbedder(256)).abstain_threshold() == cal.threshold
    after = evaluate(engine, items, progress=False)
    assert after.threshold == cal.threshold
    assert after.metrics["hybrid"]["all"].abstention_f1 == 1.0


# ================================================================ CLI
def test_cli_eval_gold_compare(tiny_engine, cli_env, capsys, tmp_path):
    root = tiny_engine.settings.project_root
    cli_env(root)
    write_gold(root / "gold.jsonl")
    out = tmp_path / "report"
    assert main(["eval", "--gold", "gold.jsonl", "--compare", "--model", "hash-256", "--out", str(out), "--quiet"]) == 0
    stdout = capsys.readouterr().out
    for mode in MODES:
        assert any(line.startswith(f"{mode}  ") or line.startswith(f"{mode} ") for line in stdout.splitlines())
    assert "R@5" in stdout and "report:" in stdout
    assert {p.name for p in out.iterdir()} == {"results.json", "report.md", "recall_at_k.png", "evidence.png"}


def test_cli_eval_without_matplotlib_warns_first_and_writes_the_report(tiny_engine, cli_env, capsys, tmp_path,
                                                                        no_matplotlib):
    root = tiny_engine.settings.project_root
    cli_env(root)
    write_gold(root / "gold.jsonl")
    out = tmp_path / "report"
    assert main(["eval", "--gold", "gold.jsonl", "--model", "hash-256", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    warning = "warning: matplotlib is not installed: the report will have no plots; pip install 'rag[eval]'"
    assert captured.err.splitlines()[0] == warning  # before the run, not after it
    assert captured.err.count("matplotlib") == 1
    assert "R@5" in captured.out and "report:" in captured.out
    assert {p.name for p in out.iterdir()} == {"results.json", "report.md"}
    assert "Plots were skipped: matplotlib is not installed" in (out / "report.md").read_text("utf-8")


def test_cli_eval_default_report_folder_and_json(tiny_engine, cli_env, capsys):
    root = tiny_engine.settings.project_root
    cli_env(root)
    write_gold(root / "gold.jsonl")
    assert main(["eval", "--gold", "gold.jsonl", "--model", "hash-256", "--mode", "dense", "--limit", "2",
                 "--json", "--quiet"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["metrics"]) == ["dense"] and data["metrics"]["dense"]["all"]["n"] == 2
    [report] = list((root / "eval" / "reports").iterdir())
    assert Path(data["report"]) == report and (report / "report.md").exists()


def test_cli_eval_malformed_gold_exits_2_naming_the_line(tiny_engine, cli_env, capsys):
    root = tiny_engine.settings.project_root
    cli_env(root)
    (root / "bad.jsonl").write_text(json.dumps(TINY_GOLD[0], ensure_ascii=False) + "\n{oops\n", "utf-8")
    assert main(["eval", "--gold", "bad.jsonl", "--model", "hash-256", "--quiet"]) == 2
    assert "error: bad.jsonl line 2: invalid JSON" in capsys.readouterr().err


def test_cli_eval_squad_indexes_once_into_a_cache(tmp_path, cli_env, capsys):
    cli_env(tmp_path)
    squad = squad_file(tmp_path / "mini.json")
    args = ["eval", "--squad", str(squad), "--model", "hash-256", "--out", str(tmp_path / "r1")]
    assert main(args) == 0
    first = capsys.readouterr()
    assert "indexing 3 documents into eval/cache/" in first.err
    [cache] = list((tmp_path / "eval" / "cache").iterdir())
    build = (cache / "current").resolve()
    assert main(args[:-1] + [str(tmp_path / "r2")]) == 0
    assert "reusing the index at eval/cache/" in capsys.readouterr().err
    assert (cache / "current").resolve() == build
    results = json.loads((tmp_path / "r2" / "results.json").read_text("utf-8"))
    assert results["gold"]["kind"] == "squad" and len(results["records"]) == 5
    assert results["metrics"]["hybrid"]["all"]["unanswerable"] == 1
    assert results["index"]["corpus"]["documents"] == 3


def test_cli_eval_gold_with_distractors_and_calibration(tiny_engine, cli_env, capsys, tmp_path):
    root = tiny_engine.settings.project_root
    cli_env(root)
    write_gold(root / "gold.jsonl")
    news = news_files(tmp_path / "news")
    cache = tmp_path / "cache"
    assert main(["eval", "--gold", "gold.jsonl", "--model", "hash-256", "--distractors", str(news),
                 "--max-distractors", "4", "--index", str(cache), "--calibrate", "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "added 4 distractor documents" in err and "calibrated abstention threshold" in err
    results = json.loads((tmp_path / "r" / "results.json").read_text("utf-8"))
    assert results["index"]["corpus"]["documents"] == 3 + 4
    stored = json.loads((cache / "calibration.json").read_text("utf-8"))["hash-256"]
    assert results["threshold"] == pytest.approx(stored["threshold"], abs=1e-6)  # results round to 6 places
    assert results["gold"]["calibration"]["source"] == "gold.jsonl"
    assert not (root / "index" / "calibration.json").exists()  # the project's index is untouched


def test_cli_eval_calibrate_needs_unanswerable_questions(tiny_engine, cli_env, capsys):
    root = tiny_engine.settings.project_root
    cli_env(root)
    write_gold(root / "gold.jsonl")
    assert main(["eval", "--gold", "gold.jsonl", "--model", "hash-256", "--limit", "3", "--calibrate", "--quiet"]) == 2
    assert "--calibrate needs both answerable and unanswerable questions (3 of the 3" in capsys.readouterr().err
    assert not (root / "index" / "calibration.json").exists()


def test_cli_eval_refuses_to_overwrite_the_project_index_with_squad(tmp_path, cli_env, capsys):
    cli_env(tmp_path)
    squad = squad_file(tmp_path / "mini.json")
    assert main(["eval", "--squad", str(squad), "--model", "hash-256", "--index", "index", "--quiet"]) == 2
    assert "is the project's index" in capsys.readouterr().err


def test_cache_folder_depends_on_documents_and_model(tmp_path):
    docs, _ = load_squad(squad_file(tmp_path / "mini.json"))
    s = Settings(project_root=tmp_path, model="hash-256")
    assert cache_dir(s, docs) == cache_dir(s, list(reversed(docs)))
    assert cache_dir(s, docs).parent == tmp_path / "eval" / "cache"
    assert cache_dir(s, docs[:2]) != cache_dir(s, docs)
    assert cache_dir(s.replace(model="hash-128"), docs) != cache_dir(s, docs)


# ================================================================ CI gate (real model)
@pytest.mark.model
def test_seed_gold_gate(seed_engine):
    """CI fails when hybrid Recall@5 < 0.9 or answer containment < 0.7 on the seed gold set."""
    items = load_gold(SEED_GOLD, seed_engine.settings.project_root)
    run = evaluate(seed_engine, items, ("hybrid",), progress=False)
    m = run.metrics["hybrid"]["all"]
    failing = [f"{r.item.id}: R@5 {r.scores.recall_at_5}, containment {r.scores.containment}"
               for r in run.records if r.item.answerable and (r.scores.recall_at_5 < 1 or not r.scores.containment)]
    assert m.recall_at_5 >= 0.9, f"hybrid Recall@5 {m.recall_at_5:.3f} < 0.9; " + "; ".join(failing)
    assert m.containment >= 0.7, f"answer containment {m.containment:.3f} < 0.7; " + "; ".join(failing)


def test_report_has_first_sentence_and_length_and_no_abstention_scores_without_unanswerable(tiny_engine):
    items = [i for i in tiny_items(tiny_engine.settings) if i.answerable]
    run = evaluate(tiny_engine, items, ("hybrid",), progress=False, fallback=True)
    assert run.modes == ("hybrid", "hybrid/fallback")
    m = run.metrics["hybrid"]["all"]
    assert m.abstention_f1 is None and m.abstention_precision is None and m.abstention_recall is None
    assert m.wrong_abstention_rate is not None
    answered = [r for r in run.records_for("hybrid") if not r.answer.abstained]
    assert m.answer_chars == pytest.approx(sum(len(s) for r in answered for s in r.answer.sentences) / len(answered))
    assert 0 <= m.first_containment <= m.containment
    table = format_table(run)
    header = table.splitlines()[0].split()
    assert {"first", "chars"} <= set(header)
    row = next(line.split() for line in table.splitlines() if line.startswith("hybrid "))
    assert row[header.index("absF1")] == "—" and row[header.index("absP")] == "—"
    assert "hybrid/fallback" in table and "without the judge" in table


def test_the_report_never_records_the_api_token(tiny_engine, tmp_path):
    engine = Engine(tiny_engine.settings.replace(api_token="s3cret-token"), tiny_engine.embedder)
    run = evaluate(engine, tiny_items(engine.settings), ("hybrid",), progress=False)
    write_report(run, tmp_path / "out", engine.index, {"kind": "gold", "path": "gold.jsonl"})
    text = "".join(f.read_text("utf-8") for f in (tmp_path / "out").glob("*.*") if f.suffix in (".json", ".md"))
    assert "s3cret-token" not in text
    assert json.loads((tmp_path / "out" / "results.json").read_text("utf-8"))["settings"]["api_token"] == "(set)"
