import pytest

from peftner.metrics import load_seqeval, score


def test_entity_f1_hand_computed():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG", "O"], ["B-ORG", "O"]]
    # gold entities: PER(0-1), LOC(3), ORG(0); predicted: PER(0-1), ORG(3), ORG(0) → 2 correct
    result = score(pred, gold)
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 / 3)
    assert result["per_type"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "number": 1}
    assert result["per_type"]["ORG"]["precision"] == pytest.approx(0.5)
    assert result["per_type"]["LOC"]["recall"] == 0.0
    assert result["accuracy"] == pytest.approx(6 / 7)


def test_partial_span_is_wrong_and_strict_mode_rejects_ill_formed():
    gold = [["B-PER", "I-PER", "I-PER", "O"]]
    assert score([["B-PER", "I-PER", "O", "O"]], gold)["f1"] == 0.0
    ill_formed = [["I-PER", "I-PER", "I-PER", "O"]]
    assert score(ill_formed, gold)["f1"] == 1.0  # conlleval: I- opens an entity
    assert score(ill_formed, gold, f1_scheme="IOB2")["f1"] == 0.0


def test_precision_recall_differ():
    gold = [["B-LOC", "O", "B-LOC", "O"]]
    pred = [["B-LOC", "O", "O", "O"]]
    result = score(pred, gold)
    assert (result["precision"], result["recall"]) == (1.0, 0.5)
    assert result["f1"] == pytest.approx(2 / 3)


def test_token_accuracy_for_non_bio_tags():
    result = score([["NN", "VB", "DT"]], [["NN", "NN", "DT"]], metric="token_accuracy")
    assert result["f1"] == result["accuracy"] == pytest.approx(2 / 3)


def test_metric_module_is_loaded_from_the_package():
    module = load_seqeval()
    assert "Entity-level" in module.description
