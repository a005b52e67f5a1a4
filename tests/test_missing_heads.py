"""A decoder that transformers has no token-classification class for (Gemma 3, ``gemma3_text``) gets
peftner's head on its bare model: it trains, is saved, reloads in a fresh process through
``peftner predict`` with the scored tags, and exports merged. (Every method on it: the architecture
matrix, tests/test_architectures.py.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import memorisable_sentences, memorise_argv, subprocess_env, write_conll
from peftner.recipe import PREDICTIONS_FILE, main
from peftner.testing.tiny import build_checkpoint
from peftner.reuse.text import read_tagged_conll


@pytest.fixture(scope="module")
def gemma3(tmp_path_factory):
    root = tmp_path_factory.mktemp("gemma3")
    files = {"train": write_conll(root / "train.conll", memorisable_sentences(24)),
             "test": write_conll(root / "test.conll", memorisable_sentences(16, seed=7))}
    files["validation"] = files["train"]
    return {"root": root, "model": build_checkpoint("gemma3", root / "model"), "files": files}


def test_transformers_has_no_gemma3_token_classifier_of_its_own():
    """The premise: without peftner's head the auto class refuses this model type."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES

    assert "gemma3_text" not in MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES


def _predict(adapter, test, out):
    command = [sys.executable, "-m", "peftner.cli", "predict", "--adapter", str(adapter), "--input", str(test),
               "--output-format", "conll", "--output", str(out)]
    done = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return [[w[1] for w in s] for s in read_tagged_conll(out)]


@pytest.mark.parametrize("method, rate", [("lora", "3e-2"), ("qlora", "3e-2")])
def test_gemma3_trains_reloads_in_a_fresh_process_and_exports_merged(method, rate, gemma3, tmp_path):
    from peftner.reuse import Tagger, export_model

    out = tmp_path / method
    metrics = main(method, memorise_argv(gemma3["files"], gemma3["model"], out, "--epochs", 3,
                                         "--learning-rate", rate, "--keep-checkpoints", 0))
    assert metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"]
    scored = [[w[2] for w in s] for s in read_tagged_conll(out / PREDICTIONS_FILE)]
    gold = [[w[1] for w in s] for s in read_tagged_conll(out / PREDICTIONS_FILE)]
    tags = _predict(out / "adapter", gemma3["files"]["test"], tmp_path / "predict.conll")
    assert tags == scored
    correct = sum(p == g for ps, gs in zip(tags, gold) for p, g in zip(ps, gs))
    assert correct / sum(map(len, gold)) == metrics["test_accuracy"]
    if method == "lora":  # merged: a plain token classifier of peftner's head class, tagging the same
        merged = export_model(out / "adapter", tmp_path / "merged", merge=True)
        config = json.loads((merged / "config.json").read_text())
        assert config["architectures"] == ["Gemma3TextForTokenClassification"]
        words = [[w[0] for w in s] for s in read_tagged_conll(out / PREDICTIONS_FILE)]
        assert [p.tags for p in Tagger.from_pretrained(merged, device="cpu").predict(words)] == scored
        assert _predict(merged, gemma3["files"]["test"], tmp_path / "merged.conll") == scored
