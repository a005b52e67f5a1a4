import pytest
import random

from conftest import words_from_features

from peftner.data.alignment import IGNORE_INDEX, encode_sentences, plan_windows
from peftner.data.collator import LengthGroupedBatchSampler, PaddingCollator


def test_plan_windows_partition_and_budget():
    rng = random.Random(0)
    for _ in range(50):
        lengths = [rng.randint(1, 6) for _ in range(rng.randint(1, 400))]
        budget = rng.randint(6, 40)
        windows = plan_windows(lengths, budget)
        owned = [w for _, _, s, e in windows for w in range(s, e)]
        assert owned == list(range(len(lengths)))  # every word owned exactly once, in order
        for start, end, own_start, own_end in windows:
            assert start <= own_start < own_end <= end
            assert sum(min(n, budget) for n in lengths[start:end]) <= budget


def _round_trip(tokenizer, sentences, max_length, label_all=False):
    label2id = {"O": 0, "B-PER": 1, "B-LOC": 2}
    tokens = [s[0] for s in sentences]
    tags = [s[1] for s in sentences]
    features = encode_sentences(tokens, tags, tokenizer, label2id, max_length, label_all)
    assert all(len(f["input_ids"]) <= max_length for f in features)
    # Predict with the gold label at every position that carries one: words must come back exact.
    per_word = words_from_features(features, [f["labels"] for f in features], [len(t) for t in tokens])
    assert all(-1 not in row and IGNORE_INDEX not in row for row in per_word)
    id2label = {v: k for k, v in label2id.items()}
    assert [[id2label[i] for i in row] for row in per_word] == tags
    return features


def test_first_subword_labelled_and_special_tokens(tiny_tokenizer):
    features = _round_trip(tiny_tokenizer, [(["Alices", "lives", "in", "Paris"], ["B-PER", "O", "O", "B-LOC"])], 64)
    (f,) = features
    assert f["input_ids"][0] == tiny_tokenizer.cls_token_id and f["input_ids"][-1] == tiny_tokenizer.sep_token_id
    # "alices" = alice ##s: label on "alice" only
    assert f["labels"] == [IGNORE_INDEX, 1, IGNORE_INDEX, 0, 0, 2, IGNORE_INDEX]
    assert f["word_index"] == [-1, 0, -1, 1, 2, 3, -1]
    all_sub = encode_sentences([["Alices"]], [["B-PER"]], tiny_tokenizer, {"O": 0, "B-PER": 1}, 64, True)
    assert all_sub[0]["labels"] == [IGNORE_INDEX, 1, 1, IGNORE_INDEX]  # no I-PER in the tag set: B-PER stays


def test_label_all_subwords_continues_a_b_word_with_i(tiny_tokenizer):
    """Inner subwords of a B-X word are I-X (they continue the entity); of I-X and O words, the same tag."""
    label2id = {"O": 0, "B-PER": 1, "I-PER": 2}
    (f,) = encode_sentences([["Alices", "Alices", "unknown"]], [["B-PER", "I-PER", "O"]], tiny_tokenizer,
                            label2id, 64, label_all_subwords=True)
    # alice ##s | alice ##s | un ##known
    assert f["labels"] == [IGNORE_INDEX, 1, 2, 2, 2, 0, 0, IGNORE_INDEX]
    (first_only,) = encode_sentences([["Alices"]], [["B-PER"]], tiny_tokenizer, label2id, 64)
    assert first_only["labels"] == [IGNORE_INDEX, 1, IGNORE_INDEX, IGNORE_INDEX]


def test_unknown_and_empty_words_still_get_a_position(tiny_tokenizer):
    _round_trip(tiny_tokenizer, [(["zzz", "\u200b", "Paris"], ["O", "B-PER", "B-LOC"])], 64)


def test_2000_token_sentence_round_trip_with_real_tokenizer(tiny_tokenizer):
    rng = random.Random(1)
    words = ["alice", "paris", "lives", "workser", "unknown", "qq"]
    tokens = [rng.choice(words) for _ in range(2000)]
    tags = [rng.choice(["O", "B-PER", "B-LOC"]) for _ in tokens]
    features = _round_trip(tiny_tokenizer, [(tokens, tags), (["Bob"], ["B-PER"])], 64)
    assert len(features) > 2000 * 1.2 / 62  # really windowed, not truncated


def test_embedded_tokenizer_windows_long_tweet():
    from peftner.config import default_model
    from peftner.models.loading import load_tokenizer

    tokenizer = load_tokenizer(default_model())
    tokens = ["@user", "https://t.co/abcDEF123", "Empire", "State", "Building", "#nyc"] * 400
    tags = ["O", "O", "B-PER", "O", "O", "B-LOC"] * 400
    features = _round_trip(tokenizer, [(tokens, tags)], 512)
    assert len(features) >= 2


def test_collator_pads_dynamically():
    collator = PaddingCollator(pad_token_id=0)
    batch = collator([{"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [1, 2, 3],
                       "word_index": [-1, 0, -1], "example_id": 0},
                      {"input_ids": [5], "attention_mask": [1], "labels": [1], "word_index": [-1],
                       "example_id": 1}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["labels"].tolist() == [[1, 2, 3], [1, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_length_grouped_sampler_is_seeded_and_complete():
    lengths = [random.Random(i).randint(3, 90) for i in range(203)]
    a = list(LengthGroupedBatchSampler(lengths, 8, seed=5))
    b = list(LengthGroupedBatchSampler(lengths, 8, seed=5))
    assert a == b
    assert sorted(i for batch in a for i in batch) == list(range(203))
    sampler = LengthGroupedBatchSampler(lengths, 8, seed=5)
    sampler.set_epoch(1)
    assert list(sampler) != a
    padding = sum(max(lengths[i] for i in bt) * len(bt) - sum(lengths[i] for i in bt) for bt in a)
    random_batches = [list(range(k, min(k + 8, 203))) for k in range(0, 203, 8)]
    padding_random = sum(max(lengths[i] for i in bt) * len(bt) - sum(lengths[i] for i in bt) for bt in random_batches)
    assert padding < padding_random / 3


MULTISCRIPT_TAGS = ["B-LOC", "O", "O", "O", "B-LOC", "B-LOC", "O", "B-LOC", "B-PER", "O", "O", "B-LOC", "O"]


@pytest.mark.parametrize("family", ["unigram", "bpe", "wordpiece"])
def test_every_word_is_labelled_on_a_piece_holding_its_characters(family):
    """SentencePiece (XLM-R style) and byte-level BPE split words into a bare ``▁`` / ``Ġ`` and the word's
    own pieces; the label (and so the prediction) sits on the first piece with characters of the word."""
    from peftner.models.loading import prepare_tokenizer
    from peftner.testing import tiny

    tokenizer = prepare_tokenizer({"unigram": tiny.unigram_tokenizer, "bpe": tiny.multiscript_bpe_tokenizer,
                                   "wordpiece": tiny.multiscript_wordpiece_tokenizer}[family]())
    words = tiny.MULTISCRIPT_WORDS
    label2id = {"O": 0, "B-PER": 1, "B-LOC": 2, "I-LOC": 3}
    (f,) = encode_sentences([words], [MULTISCRIPT_TAGS], tokenizer, label2id, 128, subword_owner=True)
    pieces = tokenizer.convert_ids_to_tokens(f["input_ids"])
    text = lambda piece: tokenizer.convert_tokens_to_string([piece]).strip()  # noqa: E731
    bare = [i for i, p in enumerate(pieces) if not text(p) and p not in tokenizer.all_special_tokens]
    if family != "wordpiece":  # the tokenizers really produce bare pieces (else this test proves nothing)
        assert len(bare) >= 5
    heads = [f["word_index"].index(w) for w in range(len(words))]
    for w, at in enumerate(heads):
        assert text(pieces[at]), (words[w], pieces[at])
        if family != "bpe":  # whole characters: the piece is part of the word
            assert text(pieces[at]).replace("##", "") in words[w], (words[w], pieces[at])
        assert f["labels"][at] == label2id[MULTISCRIPT_TAGS[w]]
    for i in bare:  # a bare piece is never trained, scored or aggregated
        assert f["labels"][i] == IGNORE_INDEX and f["word_index"][i] == -1 and f["subword_word"][i] == -1
    (all_sub,) = encode_sentences([words], [MULTISCRIPT_TAGS], tokenizer, label2id, 128, label_all_subwords=True)
    assert all(all_sub["labels"][i] == IGNORE_INDEX for i in bare)
    assert all_sub["labels"][heads[5]] == 2 and all_sub["labels"][heads[5] + 1] == 3  # İstanbul'da: B-LOC, I-LOC
    # A window cut keeps the head: the same words through windows of 8 come back with their tags.
    features = encode_sentences([words], [MULTISCRIPT_TAGS], tokenizer, label2id, 8)
    per_word = words_from_features(features, [x["labels"] for x in features], [len(words)])
    assert per_word == [[label2id[t] for t in MULTISCRIPT_TAGS]]
