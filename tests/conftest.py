"""Shared fixtures: a tiny randomly initialised BERT built in code, and small CoNLL corpora."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch

# The tiny models do small matrix products: one thread is faster than two and keeps parallel
# test subprocesses from oversubscribing CI's 2 cores.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(items):
    """Files marked ``slow`` first: pytest-xdist hands out whole files, and a slow one started last would
    leave one worker running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: order kept within each group


def subprocess_env(**extra) -> dict:
    """Environment for test subprocesses: this checkout's peftner first, one thread each."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **extra}


SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PEOPLE = ["alice", "bob", "carol", "dave", "erin", "frank"]
PLACES = ["paris", "london", "berlin", "madrid", "rome", "oslo"]
FILLER = ["lives", "in", "works", "near", "visited", "met", "today", "and", "the", "city"]
PIECES = ["##s", "##ing", "##er", "un", "##known"]


def build_tiny_bert(directory: Path, hidden: int = 32, layers: int = 2, max_positions: int = 64) -> Path:
    """Save a random 2-layer BERT (no head) and a matching WordPiece tokenizer to ``directory``."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = {token: i for i, token in enumerate(SPECIALS + PEOPLE + PLACES + FILLER + PIECES)}
    tokenizer = BertTokenizer(vocab=vocab)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden,
                        max_position_embeddings=max_positions, type_vocab_size=2)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(directory)
    tokenizer.model_max_length = max_positions
    tokenizer.save_pretrained(directory)
    return directory


def memorisable_sentences(n: int = 24, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """Short sentences whose entities are fully determined by the word: easy to memorise."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        person, place = rng.choice(PEOPLE), rng.choice(PLACES)
        if rng.random() < 0.5:
            tokens = [person.title(), "lives", "in", place.title()]
            tags = ["B-PER", "O", "O", "B-LOC"]
        else:
            tokens = [person.title(), PEOPLE[(PEOPLE.index(person) + 1) % 6].title(), "visited",
                      "the", "city", place.title()]
            tags = ["B-PER", "B-PER", "O", "O", "O", "B-LOC"]
        sentences.append((tokens, tags))
    return sentences


def write_conll(path: Path, sentences) -> Path:
    lines = []
    for tokens, tags in sentences:
        lines += [f"{t}\t{g}" for t, g in zip(tokens, tags)] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="session")
def memorisable_files(tmp_path_factory) -> dict[str, Path]:
    """train = dev = test: the memorisation task of the acceptance tests."""
    directory = tmp_path_factory.mktemp("memorise")
    path = write_conll(directory / "train.conll", memorisable_sentences())
    return {"train": path, "validation": path, "test": path}


def memorise_argv(files, model, output_dir, *extra) -> list[str]:
    return ["--model", str(model), "--train-file", str(files["train"]),
            "--validation-file", str(files["validation"]), "--test-file", str(files["test"]),
            "--output-dir", str(output_dir), "--batch-size", "8", "--seed", "0", *map(str, extra)]


def assert_tensorboard_equals_metrics(run_dir: Path, metrics: dict):
    """What TensorBoard's own event reader finds in one run's folder is what metrics.json says."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    scalar = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert scalar["dev/f1"] == [(h["epoch"], pytest.approx(h["dev_f1"], abs=1e-6)) for h in metrics["history"]]
    assert scalar["test/f1"] == [(metrics["optimizer_steps"], pytest.approx(metrics["test_f1"], abs=1e-6))]
    for etype, scores in metrics["per_type"].items():
        assert scalar[f"test/f1_{etype}"][0][1] == pytest.approx(scores["f1"], abs=1e-6)
        assert len(scalar[f"dev/f1_{etype}"]) == metrics["epochs"]
    for tag in ("train/loss", "train/learning_rate", "train/grad_norm"):
        assert [step for step, _ in scalar[tag]] == list(range(1, metrics["optimizer_steps"] + 1)), tag
    assert scalar["final/trainable_params"][0][1] == metrics["trainable_params"]
    assert scalar["final/adapter_bytes"][0][1] == pytest.approx(metrics["adapter_bytes"])
    for key in ("train_tokens_per_second", "peak_memory_mb"):
        assert scalar[f"final/{key}"][0][1] == pytest.approx(metrics[key], rel=1e-6)


def words_from_features(features: list[dict], values: list[list[int]], num_words: list[int]) -> list[list[int]]:
    """Per sentence, the value at each word's predicting position (``word_index``), -1 where none,
    mapped through :class:`peftner.data.WordSlots` as evaluation maps predictions."""
    from peftner.data import WordSlots
    from peftner.data.collator import PaddingCollator

    batch = PaddingCollator(0)([{**f, "labels": v} for f, v in zip(features, values)])
    slots = WordSlots(num_words)
    flat = [-1] * slots.total
    mask, at = slots.at(batch["example_id"], batch["word_index"])
    for slot, value in zip(at.tolist(), batch["labels"][mask].tolist()):
        flat[slot] = value
    return slots.split(flat)
