"""Assemble train/dev/test sentences and their label schema from a dataset name or files."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from peftner.data.builtin import BUILTIN_DATASETS, load_builtin
from peftner.data.labels import LabelSchema, check_mixed_scheme, check_scheme, detect_scheme, repair_transitions
from peftner.data.readers import Sentence, load_hub_split, read_file
from peftner.errors import PeftnerError

logger = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test")


@dataclass
class Corpus:
    name: str
    train: list[Sentence]
    validation: list[Sentence]
    test: list[Sentence]
    schema: LabelSchema
    repaired_transitions: int = 0


def _load_splits(dataset: str, files: dict[str, str | None]) -> tuple[str, dict[str, list[Sentence]]]:
    given = {k: v for k, v in files.items() if v}
    if given:
        missing = [k for k in SPLITS if k not in given]
        if missing:
            raise PeftnerError("--train-file, --validation-file and --test-file go together; missing: "
                               + ", ".join(f"--{m}-file" for m in missing))
        _warn_shared_files(given)
        return "files", {k: read_file(v) for k, v in given.items()}
    if dataset in BUILTIN_DATASETS:
        return dataset, load_builtin(dataset)
    hub_splits = {"train": "train", "validation": "validation", "test": "test"}
    return dataset, {k: load_hub_split(dataset, v) for k, v in hub_splits.items()}


def _warn_shared_files(files: dict[str, str]) -> None:
    """A run that selects its epoch on the training data, or tests on it, says so (a memorisation
    check may do this on purpose; a real comparison must not)."""
    import os

    def same(a, b) -> bool:
        try:
            return os.path.samefile(a, b)
        except OSError:
            return False

    for split, meaning in (("validation", "the best epoch is chosen on training data"),
                           ("test", "test scores measure the training data")):
        if same(files["train"], files[split]):
            logger.warning("--%s-file is the training file: %s", split, meaning)


def load_corpus(dataset: str = "wnut16", train_file: str | None = None,
                validation_file: str | None = None, test_file: str | None = None,
                max_train_samples: int | None = None, seed: int = 42, refuse_invalid_transitions: bool = False,
                allow_unseen_tags: bool = False, tag_scheme: str = "auto") -> Corpus:
    """Read the three splits, build the schema from train, and validate dev/test against it.

    ``max_train_samples`` keeps a seeded random subset of the training sentences (nested for
    growing sizes with the same seed, which the data-efficiency benchmark relies on); the label set
    still comes from the whole training split. ``tag_scheme="none"`` scores token accuracy whatever
    the tags look like; ``"auto"`` detects the scheme and refuses a mix of BIO and other tags, or of
    two schemes; ``"IOB1"``, ``"IOB2"``, ``"IOBES"`` or ``"BILOU"`` is taken as given (a tag outside
    it is refused at its line). Dev and test tags must follow the training data's scheme.
    """
    name, splits = _load_splits(dataset, {"train": train_file, "validation": validation_file,
                                          "test": test_file})
    full_train = train = splits["train"]
    if max_train_samples is not None and max_train_samples < len(train):
        order = list(range(len(train)))
        random.Random(seed).shuffle(order)
        train = [train[i] for i in sorted(order[:max_train_samples])]
    # Scheme and label set come from the whole training split, so a subset keeps the same head.
    if tag_scheme != "none":
        check_mixed_scheme(full_train)
    scheme = detect_scheme(full_train) if tag_scheme == "auto" else tag_scheme
    for split in SPLITS:
        check_scheme(splits[split] if split != "train" else full_train, scheme, named=tag_scheme != "auto")
    repaired = sum(repair_transitions(splits[s], scheme, refuse=refuse_invalid_transitions) for s in SPLITS)
    if repaired:
        logger.warning("repaired %d invalid BIO transitions (I- without a preceding entity -> B-); "
                       "pass --refuse-invalid-transitions to refuse such files instead", repaired)
    schema = LabelSchema.from_sentences(full_train, "IOB2" if scheme == "IOB1" else scheme, scheme)
    mapped = sum(schema.check_known(splits[s], allow_unseen=allow_unseen_tags)
                 for s in ("validation", "test"))
    if mapped:
        logger.warning("%d dev/test tags never seen in training were scored as 'O'", mapped)
    return Corpus(name, train, splits["validation"], splits["test"], schema, repaired)
