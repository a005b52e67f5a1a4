"""Property-based tests (hypothesis) of the readers and the subword alignment.

Every input either round-trips exactly or gets a one-line error: random unicode tokens (whitespace
characters such as U+00A0 and U+3000 included), random tag sequences, random line endings and BOMs.
"""

import codecs
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import words_from_features

from peftner.data.alignment import encode_sentences
from peftner.data.readers import conll_cell_problem, read_conll, read_jsonl
from peftner.errors import PeftnerError
from peftner.reuse.text import read_inputs, write_tagged_conll

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Any character but surrogates (not characters; UTF-8 cannot hold them); whitespace characters are
# drawn often, since they are the tokens readers used to lose.
WHITESPACE = "\u00a0\u3000\u2028\u2029\u0085\u200b\u2003\x0b\x0c \t\r\n"
characters = st.one_of(st.characters(blacklist_categories=("Cs",)), st.sampled_from(WHITESPACE))
any_token = st.text(characters, min_size=1, max_size=8)
conll_token = any_token.filter(lambda t: conll_cell_problem(t) is None)
bio_tag = st.builds(lambda p, t: "O" if p == "O" else f"{p}-{t}", st.sampled_from("OBIES"),
                    st.sampled_from(["PER", "LOC", "x y", "ÖRG", "日本"]))
other_tag = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=5)
tag = st.one_of(bio_tag, other_tag)
line_ending = st.sampled_from(["\n", "\r\n", "\r"])
bom = st.sampled_from([b"", codecs.BOM_UTF8])


def sentences_of(token):
    return st.lists(st.lists(st.tuples(token, tag), min_size=1, max_size=6), min_size=1, max_size=4)


def conll_bytes(sentences, eol: str, mark: bytes, final: bool) -> bytes:
    blocks = [eol.join(f"{t}\t{g}" for t, g in sentence) for sentence in sentences]
    return mark + (eol + eol).join(blocks).encode("utf-8") + (eol.encode() if final else b"")


def one_line_error(err: Exception) -> str:
    message = str(err)
    assert message and "\n" not in message and "\r" not in message, repr(message)
    return message


@FAST
@given(sentences_of(conll_token), line_ending, bom, st.booleans())
def test_conll_round_trips_with_any_line_ending_and_bom(tmp_path, sentences, eol, mark, final):
    path = tmp_path / "data.conll"
    path.write_bytes(conll_bytes(sentences, eol, mark, final))
    read = read_conll(path)
    assert [list(zip(s.tokens, s.tags)) for s in read] == [list(s) for s in sentences]
    # the line numbers count CR-only and CRLF endings like LF ones
    first_lines = [s.lines[0] for s in read]
    expected, line = [], 1
    for sentence in sentences:
        expected.append(line)
        line += len(sentence) + 1
    assert first_lines == expected


@FAST
@given(any_token)
def test_a_token_conll_cannot_hold_is_refused_by_the_writer_or_round_trips(tmp_path, token):
    problem = conll_cell_problem(token)
    if problem is not None:
        assert "\n" not in problem
        return
    path = tmp_path / "one.conll"
    path.write_bytes(f"{token}\tO\nx\tB-PER\n".encode())
    assert read_conll(path)[0].tokens == [token, "x"]


@FAST
@given(st.binary(max_size=200))
def test_arbitrary_bytes_read_or_fail_with_one_line(tmp_path, raw):
    for name in ("data.conll", "data.jsonl"):
        path = tmp_path / name
        path.write_bytes(raw)
        try:
            reader = read_jsonl if name.endswith("jsonl") else read_conll
            for sentence in reader(path):
                assert sentence.tokens and len(sentence.tokens) == len(sentence.tags)
        except PeftnerError as err:
            assert one_line_error(err).startswith(str(path))


@FAST
@given(sentences_of(any_token), line_ending, bom)
def test_jsonl_round_trips_any_token_a_conll_file_holds_and_refuses_the_rest(tmp_path, sentences, eol, mark):
    """JSON Lines data reads exactly, and so does the CoNLL file of its test predictions (a run
    writes one): a token that file could not hold back is refused at its line instead."""
    path = tmp_path / "data.jsonl"
    lines = [json.dumps({"tokens": [t for t, _ in s], "tags": [g for _, g in s]}, ensure_ascii=False)
             for s in sentences]
    path.write_bytes(mark + eol.join(lines).encode("utf-8"))
    bad = next((i for i, s in enumerate(sentences, start=1) for t, _ in s if conll_cell_problem(t)), None)
    if bad is not None:
        with pytest.raises(PeftnerError) as err:
            read_jsonl(path)
        assert one_line_error(err.value).startswith(f"{path}:{bad}: token ")
        return
    read = read_jsonl(path)
    assert [list(zip(s.tokens, s.tags)) for s in read] == [list(s) for s in sentences]
    written = tmp_path / "predictions.conll"
    write_tagged_conll(written, [s.tokens for s in read], [s.tags for s in read])
    assert [(s.tokens, s.tags) for s in read_conll(written)] == [(s.tokens, s.tags) for s in read]


@FAST
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20),
                max_size=6), line_ending, bom)
def test_predict_text_input_is_the_same_for_every_line_ending(tmp_path, texts, eol, mark):
    path = tmp_path / "input.txt"
    path.write_bytes(mark + eol.join(texts).encode("utf-8"))
    joined = next((i for i, t in enumerate(texts, start=1) if t.startswith("\ufeff")), None)
    if joined is not None:  # a byte-order mark starting a line: files joined with their marks
        with pytest.raises(PeftnerError) as err:
            read_inputs(str(path))
        assert one_line_error(err.value).startswith(f"{path}:{joined}: a byte-order mark")
        return
    items, fmt = read_inputs(str(path))
    # one item per line, blank ones included (one output record per input line); a final line break
    # ends the last line rather than starting an empty one
    assert fmt == "text" and items == (texts[:-1] if texts and texts[-1] == "" else texts)


@FAST
@given(sentences_of(conll_token), line_ending)
def test_predict_conll_input_reads_the_tokens_training_reads(tmp_path, sentences, eol):
    path = tmp_path / "input.conll"
    path.write_bytes(conll_bytes(sentences, eol, b"", True))
    items, _ = read_inputs(str(path))
    assert items == [s.tokens for s in read_conll(path)]


@FAST
@given(st.lists(st.lists(st.tuples(any_token, bio_tag), min_size=1, max_size=40), min_size=1, max_size=5),
       st.integers(3, 24), st.booleans())
def test_alignment_gives_every_word_its_tag_exactly_once(tiny_tokenizer, sentences, max_length, all_subwords):
    words = [[t for t, _ in s] for s in sentences]
    tags = [[g for _, g in s] for s in sentences]
    label2id = {label: i for i, label in enumerate(sorted({g for row in tags for g in row}))}
    features = encode_sentences(words, tags, tiny_tokenizer, label2id, max_length, all_subwords)
    assert all(len(f["input_ids"]) <= max_length for f in features)
    # use the gold label at each predicting position as the "prediction": it must come back per word
    labels = [[label if w >= 0 else 0 for label, w in zip(f["labels"], f["word_index"])] for f in features]
    per_word = words_from_features(features, labels, [len(w) for w in words])
    assert per_word == [[label2id[g] for g in row] for row in tags]
    owned = sorted((f["example_id"], w) for f in features for w in f["word_index"] if w >= 0)
    assert owned == [(i, w) for i, row in enumerate(words) for w in range(len(row))]  # each word once


@pytest.mark.parametrize("max_length", [1, 2])
def test_max_length_without_room_for_words_is_one_line(tiny_tokenizer, max_length):
    with pytest.raises(PeftnerError) as err:
        encode_sentences([["alice"]], [["O"]], tiny_tokenizer, {"O": 0}, max_length)
    assert one_line_error(err.value) == (f"--max-length {max_length} leaves no room for words after the "
                                         "model's 2 special tokens; use at least 3")
