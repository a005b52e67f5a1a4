"""Adapters saved by an older peftner (tests/fixtures/legacy, made at commit 2f8c153 by
tests/fixtures/make_legacy_adapters.py) still load and give the same logits.

This guards the saved formats across re-layouts: PEFT finds peftner's own tuners by the
``peft_type`` string in adapter_config.json (PEFTNER_BOTTLENECK, PEFTNER_PTUNING_V2), and the
parameter names in the safetensors must still match the tuner layers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

LEGACY = Path(__file__).resolve().parent / "fixtures" / "legacy"
REFERENCE = json.loads((LEGACY / "reference.json").read_text())
PEFT_TYPES = {"lora": "LORA", "adapter": "PEFTNER_BOTTLENECK", "prompt": "PROMPT_TUNING",
              "ptuning_v2": "PEFTNER_PTUNING_V2", "ia3": "IA3"}


def _logits(model, tokenizer):
    batch = tokenizer(REFERENCE["input"], is_split_into_words=True, padding=True, return_tensors="pt")
    with torch.inference_mode():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return logits[:, -batch["input_ids"].shape[1]:]  # prompt tuning: without the virtual rows


def test_fixture_covers_every_peftner_owned_and_builtin_peft_method():
    assert sorted(REFERENCE["methods"]) == sorted(PEFT_TYPES)


@pytest.mark.parametrize("method", REFERENCE["methods"])
def test_legacy_adapter_loads_with_tagger_and_reproduces_logits(method):
    from safetensors.torch import load_file

    from peftner.reuse import Tagger

    tagger = Tagger.from_pretrained(LEGACY / method, base_model=str(LEGACY / "base"), device="cpu")
    assert tagger.model.active_peft_config.peft_type == PEFT_TYPES[method]
    expected = load_file(LEGACY / "reference.safetensors")[method]
    torch.testing.assert_close(_logits(tagger.model, tagger.tokenizer), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["adapter", "ptuning_v2"])
def test_legacy_peftner_tuner_loads_with_plain_peft(method):
    """``import peftner`` is all a PEFT user needs to load peftner's own adapter types."""
    import peftner  # noqa: F401  (registers the tuners with PEFT)
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    config = json.loads((LEGACY / method / "config.json").read_text())
    base = AutoModelForTokenClassification.from_pretrained(
        LEGACY / "base", id2label={int(k): v for k, v in config["id2label"].items()}, label2id=config["label2id"])
    model = PeftModel.from_pretrained(base, LEGACY / method).eval()
    expected = load_file(LEGACY / "reference.safetensors")[method]
    torch.testing.assert_close(_logits(model, AutoTokenizer.from_pretrained(LEGACY / method)), expected,
                               rtol=1e-5, atol=1e-6)
