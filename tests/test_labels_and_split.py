import pytest

from peftner.data.builtin import load_builtin, split_sentences
from peftner.data.corpus import load_corpus
from peftner.data.labels import LabelSchema, detect_scheme, repair_transitions
from peftner.data.readers import Sentence
from peftner.errors import DataError


def S(tags, tokens=None):
    return Sentence(tokens or [f"w{i}" for i in range(len(tags))], list(tags), "f.conll",
                    list(range(10, 10 + len(tags))))


def test_scheme_detection():
    assert detect_scheme([S(["B-PER", "I-PER", "O", "B-LOC"])]) == "IOB2"
    assert detect_scheme([S(["I-PER", "I-PER", "O", "I-LOC", "B-LOC"])]) == "IOB1"
    assert detect_scheme([S(["S-PER", "O", "B-LOC", "E-LOC"])]) == "IOBES"
    assert detect_scheme([S(["NN", "VBZ", "DT"])]) == "none"


def test_repair_and_strict():
    sentence = S(["O", "I-PER", "I-PER", "B-LOC", "I-ORG"])
    assert repair_transitions([sentence], "IOB2") == 2
    assert sentence.tags == ["O", "B-PER", "I-PER", "B-LOC", "B-ORG"]
    with pytest.raises(DataError, match=r"f.conll:11: invalid transition"):
        repair_transitions([S(["O", "I-PER"])], "IOB2", refuse=True)
    iob1 = S(["I-PER", "I-PER", "B-PER"])
    repair_transitions([iob1], "IOB1")
    assert iob1.tags == ["B-PER", "I-PER", "B-PER"]


def test_schema_orders_labels_and_rejects_single_class_and_unseen():
    schema = LabelSchema.from_sentences([S(["B-PER", "I-PER", "O", "B-LOC"])], "IOB2")
    assert schema.labels == ["O", "B-LOC", "B-PER", "I-PER"]
    assert schema.metric == "entity_f1" and schema.entity_types == ["LOC", "PER"]
    with pytest.raises(DataError, match="single tag"):
        LabelSchema.from_sentences([S(["O", "O"])], "none")
    with pytest.raises(DataError, match=r"f.conll:11: tag 'B-ORG' never occurs"):
        schema.check_known([S(["O", "B-ORG"])])
    unseen = S(["O", "B-ORG"])
    assert schema.check_known([unseen], allow_unseen=True) == 1 and unseen.tags == ["O", "O"]


def test_wnut16_split_is_deterministic_disjoint_and_complete():
    first, second = load_builtin("wnut16"), load_builtin("wnut16")
    assert [len(first[k]) for k in ("train", "validation", "test")] == [1915, 239, 240]
    for split in first:
        assert [s.tokens for s in first[split]] == [s.tokens for s in second[split]]
    keys = {split: {(s.lines[0]) for s in sentences} for split, sentences in first.items()}
    assert not (keys["train"] & keys["validation"]) and not (keys["train"] & keys["test"])
    assert sum(map(len, keys.values())) == 2394


def test_split_depends_only_on_split_seed():
    sentences = [S(["O"], [str(i)]) for i in range(100)]
    a, b = split_sentences(sentences), split_sentences(sentences, seed=1)
    assert [s.tokens for s in a["test"]] != [s.tokens for s in b["test"]]
    assert len(a["train"]) == 80 and len(a["validation"]) == 10 and len(a["test"]) == 10


def test_max_train_samples_nested_subsets():
    small = load_corpus(max_train_samples=100, seed=3).train
    large = load_corpus(max_train_samples=300, seed=3).train
    assert len(small) == 100 and len(large) == 300
    large_keys = {s.lines[0] for s in large}
    assert all(s.lines[0] in large_keys for s in small)
