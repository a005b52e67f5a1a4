"""Every ``peft.PeftType`` of the installed PEFT, on a tiny BERT and a tiny Llama: it trains through
``peftner train`` and reloads exactly (same logits, same tags as scored), or it is refused by name in one
line with its reason. A PEFT upgrade that adds a type fails here until peftner/methods/peft_types.py
handles it. LoRA's variants (DoRA, rsLoRA and the initialisations) are cells of the same matrix.

docs/methods.md's coverage table is generated from the same declarations (``COVERED`` / ``REFUSED``)
by benchmarks/update_docs.py.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from peft import PeftType

from conftest import memorisable_sentences, write_conll
from peftner.errors import PeftnerError
from peftner.methods import METHODS
from peftner.methods.peft import load_peft_config
from peftner.methods.peft_types import COVERED, REFUSED, refusal
from peftner.recipe import PREDICTIONS_FILE, main
from peftner.reuse import Tagger

# LoRA's variants, as flags of the lora method (the nine, minus loftq, which is refused)
LORA_VARIANTS = ("LORA --use-dora", "LORA --use-rslora", "LORA --init-lora-weights gaussian",
                 "LORA --init-lora-weights pissa", "LORA --init-lora-weights pissa_niter_4",
                 "LORA --init-lora-weights olora", "LORA --init-lora-weights eva",
                 "LORA --init-lora-weights corda", "LORA --init-lora-weights lora_ga")
CASES = (*(t.value for t in PeftType), *LORA_VARIANTS)
ARCHS = ("bert", "llama")


def test_every_type_is_covered_or_refused_once():
    types = {t.value for t in PeftType}
    assert set(COVERED) | set(REFUSED) == types, "a PEFT type peftner does not know: add a row or a refusal"
    assert not set(COVERED) & set(REFUSED)
    assert all(name in METHODS for name in COVERED.values())


@pytest.fixture(scope="module")
def backbones(tmp_path_factory) -> dict:
    from peftner.testing.tiny import build_checkpoint

    return {arch: build_checkpoint(arch, tmp_path_factory.mktemp(f"tiny-{arch}"), hidden=32) for arch in ARCHS}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("coverage-data")
    train = write_conll(root / "train.conll", memorisable_sentences(12))
    return {"train": train, "validation": train, "test": write_conll(root / "test.conll", memorisable_sentences(6, 7))}


def _capturing(method, captured: dict):
    """``method`` whose apply / initialize / as_saved also keep the model they return."""
    def keep(function):
        def wrapped(*args):
            captured["model"] = function(*args)
            return captured["model"]
        return wrapped if function else None

    return dataclasses.replace(method, apply=keep(method.apply), initialize=keep(method.initialize),
                               as_saved=keep(method.as_saved))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("case", CASES)
def test_trains_and_reloads_exactly_or_is_refused(case, arch, backbones, files, tmp_path, monkeypatch, capsys):
    peft_type, *flags = case.split()
    reason = refusal(peft_type)
    if reason is not None:  # by name, in one line, through the --peft-config route as well
        path = tmp_path / "config.json"
        path.write_text(json.dumps({"peft_type": peft_type}))
        with pytest.raises(PeftnerError) as refused:
            load_peft_config(str(path), ["classifier"])
        assert str(refused.value) == f"{path}: {reason}" and "\n" not in reason
        return
    assert peft_type in COVERED, f"PEFT type {peft_type} is new: give it a row or a refusal in peft_types.py"
    name = COVERED[peft_type]
    captured = {}
    monkeypatch.setitem(METHODS, name, _capturing(METHODS[name], captured))
    out = tmp_path / "run"
    metrics = main(name, ["--model", str(backbones[arch]), "--train-file", str(files["train"]),
                          "--validation-file", str(files["validation"]), "--test-file", str(files["test"]),
                          "--output-dir", str(out), "--epochs", "1", "--batch-size", "4", "--seed", "0",
                          "--keep-checkpoints", "0", *flags])
    assert metrics["method"] == name and metrics["trainable_params"] > 0

    tagger = Tagger.from_pretrained(out / "adapter", device="cpu")
    sentences = [tokens for tokens, _ in memorisable_sentences(6, 7)]
    scored = [[line.split("\t")[2] for line in block.splitlines()]
              for block in (out / PREDICTIONS_FILE).read_text(encoding="utf-8").strip().split("\n\n")]
    assert [list(p.tags) for p in tagger.predict(sentences)] == scored
    batch = tagger.tokenizer(sentences[:3], is_split_into_words=True, padding=True, return_tensors="pt")
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        trained = captured["model"].eval()(**inputs).logits
        reloaded = tagger.model(**inputs).logits
    assert torch.equal(trained, reloaded), (trained - reloaded).abs().max()
