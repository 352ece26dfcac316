import pytest

from rag.retrieval import convex_fusion, weighted_rrf


def test_weighted_rrf_hand_computed():
    fused = weighted_rrf([[1, 2, 3], [3, 1]], [0.7, 0.3], k=60)
    assert fused[1] == pytest.approx(0.7 / 61 + 0.3 / 62)
    assert fused[2] == pytest.approx(0.7 / 62)
    assert fused[3] == pytest.approx(0.7 / 63 + 0.3 / 61)
    assert sorted(fused, key=lambda i: -fused[i]) == [1, 3, 2]


def test_weighted_rrf_weight_decides_disagreement():
    assert max(weighted_rrf([[1, 2], [2, 1]], [0.9, 0.1]).items(), key=lambda kv: kv[1])[0] == 1
    assert max(weighted_rrf([[1, 2], [2, 1]], [0.1, 0.9]).items(), key=lambda kv: kv[1])[0] == 2
    assert weighted_rrf([[], []], [0.5, 0.5]) == {}


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_every_mode_finds_the_right_document(tiny_engine, mode):
    ans = tiny_engine.ask("تماس تلفنی پوتین و ترامپ", mode=mode, k=3)
    assert ans.hits[0].passage.doc_id == next(d.id for d in tiny_engine.index.documents.values() if d.source.endswith("fa_call.txt"))
    assert len(ans.hits) <= 3
    scores = [h.score for h in ans.hits]
    assert scores == sorted(scores, reverse=True)


def test_lexical_matches_across_letter_variants(tiny_engine):
    # the document writes كيري / ظريف with Arabic letters; the query uses Persian ی / ک
    ans = tiny_engine.ask("کیری ظریف نیویورک", mode="lexical")
    assert ans.hits and ans.hits[0].passage.text.startswith("اجتماع كيري")
    assert ans.hits[0].lexical > 0


def test_duplicate_passages_are_collapsed(tiny_project):
    from rag.embedding import HashEmbedder
    from rag.engine import Engine

    same = "خبر تکراری: پوتین و ترامپ تلفنی گفتگو کردند و تماس ۵۰ دقیقه طول کشید."
    (tiny_project.corpus_dir / "copy1.txt").write_text(same + "\nمتن اول.", "utf-8")
    (tiny_project.corpus_dir / "copy2.txt").write_text(same + "\nمتن دوم.", "utf-8")
    engine = Engine(tiny_project.replace(chunk_size=100), HashEmbedder(256))
    engine.build()
    hits = engine.ask("خبر تکراری پوتین ترامپ تلفنی", k=10).hits
    texts = [h.passage.text for h in hits]
    assert len(texts) == len(set(texts))


def test_convex_fusion_hand_computed():
    fused = convex_fusion({1: 0.8, 2: 0.6}, {2: 10.0, 3: 5.0}, dense_weight=0.75)
    assert fused[1] == pytest.approx(0.75 * 0.8 + 0.25 * 0.5)  # missing lexically: the lowest lexical score
    assert fused[2] == pytest.approx(0.75 * 0.6 + 0.25 * 1.0)
    assert fused[3] == pytest.approx(0.75 * 0.6 + 0.25 * 0.5)  # missing densely: the lowest cosine
    assert convex_fusion({}, {}, 0.5) == {}
    assert convex_fusion({1: 0.3}, {}, 0.5) == {1: pytest.approx(0.15)}


def test_dense_scores_a_passage_by_its_best_sentence(tiny_engine):
    from rag.retrieval import dense_search

    index = tiny_engine.index
    q_vec = tiny_engine.embedder.embed_queries(["The airport closed for three hours."])[0]
    hits = dense_search(index, q_vec, k=len(index.passages))
    assert len({i for i, _ in hits}) == len(hits) == len(index.passages)  # one entry per passage, all found
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    for i, score in hits:
        js = index.passage_sentences(i)
        assert score == pytest.approx(float((index.sentence_vectors[js.start:js.stop] @ q_vec).max()), abs=1e-5)
        assert score == pytest.approx(index.passage_cosine(i, q_vec), abs=1e-5)
    best = index.passages[hits[0][0]]
    assert index.documents[best.doc_id].source == "corpus/en_weather.md"
    # the matching sentence scores ~1 although its passage holds other sentences too
    assert hits[0][1] > 0.99 and len(index.passage_sentences(hits[0][0])) > 1
    assert dense_search(index, q_vec, k=1) == hits[:1]
