"""An exported (merged) model and a full fine-tuning output give, in transformers.pipeline, the same word
tags as Tagger for every aggregation strategy (first / average / max)."""

import pytest
from transformers import pipeline

from conftest import memorise_argv
from peftner.errors import PeftnerError
from peftner.recipe import main
from peftner.reuse import Tagger, export_model
from peftner.testing.pipeline_tags import as_iob2, join_words, pipeline_words, tags_from_groups

# Test sentences with words of several subwords ("alices" = alice ##s, "unknowns" = un ##known ##s),
# so first / average / max can disagree.
SENTENCES = [["Alice", "lives", "in", "Paris"], ["Bob", "Carol", "visited", "the", "city", "Rome"],
             ["Alices", "met", "Unknowns", "in", "Berlins"], ["Daves", "works", "near", "Oslos", "today"],
             ["Unknown", "Frank", "visited", "Londoners", "and", "Madrid"]]


@pytest.fixture(scope="module")
def models(tmp_path_factory, memorisable_files, tiny_model):
    root = tmp_path_factory.mktemp("parity")
    main("lora", memorise_argv(memorisable_files, tiny_model, root / "lora", "--epochs", 3, "--learning-rate", "3e-2"))
    main("full", memorise_argv(memorisable_files, tiny_model, root / "full", "--epochs", 2, "--learning-rate", "1e-2"))  # leaves the all-O start
    merged = export_model(root / "lora" / "adapter", root / "merged", merge=True)
    return {"merged": merged, "full": root / "full" / "adapter"}


@pytest.mark.parametrize("kind", ["merged", "full"])
def test_pipeline_and_tagger_give_the_same_word_tags(models, kind):
    tagger = Tagger.from_pretrained(models[kind], device="cpu")
    by_strategy = {}
    for strategy in ("first", "average", "max"):
        ner = pipeline("token-classification", model=str(models[kind]), aggregation_strategy=strategy, device="cpu")
        ours = tagger.predict(SENTENCES, batch_size=2, aggregation=strategy)
        for words, prediction in zip(SENTENCES, ours):
            text, spans = join_words(words)
            theirs = tags_from_groups(ner(text), spans)
            assert as_iob2(prediction.tags) == theirs, (strategy, words)
        by_strategy[strategy] = [p.tags for p in ours]
    assert sum(t != "O" for tags in by_strategy["first"] for t in tags) >= 5  # entities, not all-O
    # The strategies are really different computations on these words (otherwise this test proves little).
    assert len({str(tags) for tags in by_strategy.values()}) > 1


def test_aggregation_scores_follow_the_pipeline_definitions(models):
    import torch

    tagger = Tagger.from_pretrained(models["full"], device="cpu")
    words = ["Unknowns", "met", "Alices"]
    encoding = tagger.tokenizer(words, is_split_into_words=True, return_tensors="pt")
    with torch.inference_mode():
        probs = tagger.model(**encoding).logits[0].softmax(-1)
    positions = {w: [i for i, x in enumerate(encoding.word_ids()) if x == w] for w in range(len(words))}
    for strategy in ("first", "average", "max"):
        prediction = tagger.predict([words], aggregation=strategy)[0]
        for w, subwords in positions.items():
            p = probs[subwords]
            if strategy == "first":
                expected = p[0]
            elif strategy == "average":
                expected = p.mean(0)
            else:
                expected = p[p.max(-1).values.argmax()]
            assert prediction.scores[w] == pytest.approx(float(expected.max()), abs=1e-5)
            assert prediction.tags[w] == tagger.labels()[int(expected.argmax())]


def test_word_units_and_iob2_helpers(tiny_tokenizer):
    assert pipeline_words(tiny_tokenizer, ["@bob", "lives", "in", "paris."]) == ["@", "bob", "lives", "in", "paris", "."]
    assert as_iob2(["I-PER", "I-PER", "O", "B-LOC", "I-ORG"]) == ["B-PER", "I-PER", "O", "B-LOC", "B-ORG"]
    text, spans = join_words(["Alice", "lives", "in", "New", "York"])
    groups = [{"entity_group": "PER", "start": 0, "end": 5, "word": "alice"},
              {"entity_group": "LOC", "start": 15, "end": 23, "word": "new york"}]
    assert tags_from_groups(groups, spans) == ["B-PER", "O", "O", "B-LOC", "I-LOC"]
    bare = {"entity_group": "ORG", "start": 6, "end": 7, "word": ""}  # a lone "▁" piece the pipeline tagged
    assert tags_from_groups([bare, *groups], spans) == ["B-PER", "O", "O", "B-LOC", "I-LOC"]
    with pytest.raises(PeftnerError, match="aggregation must be first, average or max"):
        Tagger.predict(object.__new__(Tagger), [["a"]], aggregation="simple")
