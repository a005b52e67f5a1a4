import json

import pytest

from peftner.data.readers import from_hf_dataset, read_conll, read_file, read_jsonl
from peftner.errors import DataError


def test_conll_reads_tabs_spaces_docstart_and_whitespace_separators(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text("-DOCSTART- O\n\nEU NNP B-ORG\nrejects VBZ O\n\t\n \nPeter NNP B-PER\n", encoding="utf-8")
    sentences = read_conll(path)
    assert [s.tokens for s in sentences] == [["EU", "rejects"], ["Peter"]]
    assert [s.tags for s in sentences] == [["B-ORG", "O"], ["B-PER"]]
    assert sentences[1].lines == [7]


def test_conll_tab_separated_keeps_tokens_with_spaces(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_text("New York\tB-LOC\nis\tO\n", encoding="utf-8")
    assert read_conll(path)[0].tokens == ["New York", "is"]


def test_conll_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("EU\tB-ORG\nrejects\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_conll(path)
    assert err.value.line == 2
    assert str(err.value).startswith(f"{path}:2:")


def test_conll_inconsistent_columns(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("EU NNP B-ORG\nrejects O\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.conll:2: 2 columns, but line 1 has 3"):
        read_conll(path)


def test_non_utf8_and_empty_and_missing(tmp_path):
    bad = tmp_path / "latin1.conll"
    bad.write_bytes("ok\tO\n\ncaf\xe9\tO\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.conll:3: not valid UTF-8"):
        read_conll(bad)
    empty = tmp_path / "empty.conll"
    empty.write_text("\n \n", encoding="utf-8")
    with pytest.raises(DataError, match="empty.conll: file is empty"):
        read_conll(empty)
    with pytest.raises(DataError, match="file not found"):
        read_file(tmp_path / "missing.conll")


def test_jsonl_reader_and_errors(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"tokens": ["Paris"], "tags": ["B-LOC"]}) + "\n\n"
                    + json.dumps({"tokens": ["a", "b"], "tags": ["O"]}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"a.jsonl:3: 2 tokens but 1 tags"):
        read_jsonl(path)
    path.write_text('{"tokens": ["x"], "tags": ["O"]}\n{oops\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"a.jsonl:2: invalid JSON"):
        read_file(path)
    path.write_text('{"tokens": [], "tags": []}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"a.jsonl:1: empty sentence"):
        read_file(path)
    path.write_text('{"tokens": ["Paris", "is"], "tags": ["B-LOC", "O"]}\n', encoding="utf-8")
    assert read_file(path)[0].tags == ["B-LOC", "O"]


def test_hub_dataset_classlabel_names_are_used():
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({
        "id": datasets.Value("string"),
        "tokens": datasets.Sequence(datasets.Value("string")),
        "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER", "I-PER", "B-LOC"])),
    })
    dataset = datasets.Dataset.from_dict(
        {"id": ["0", "1"], "tokens": [["John", "Smith", "ran"], ["Rome"]], "ner_tags": [[1, 2, 0], [3]]},
        features=features)
    sentences = from_hf_dataset(dataset, name="toy")
    assert sentences[0].tags == ["B-PER", "I-PER", "O"]
    assert sentences[1].tokens == ["Rome"] and sentences[1].tags == ["B-LOC"]
