"""Bottleneck adapters, prompt tuning and P-tuning v2 on the shared method contract (tiny BERT).

Each method must: train only the parameters its formula says (head included), learn the
memorisable set through the recipe, and reload in a fresh process with plain PEFT to the same
logits as the trained model in memory. Prompt methods must also keep one logit row per input
position and score only real positions.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import memorise_argv, subprocess_env, write_conll
from peftner.methods import METHODS, count_parameters, get_method
from peftner.recipe import main

NEW_METHODS = ("adapter", "prompt", "ptuning_v2")
LABELS = ["O", "B-LOC", "B-PER"]
# Small batches and a higher rate than the defaults: the tiny random model must memorise quickly.
LEARNING = {
    "adapter": ("--learning-rate", "2e-2"),
    "prompt": ("--learning-rate", "5e-2"),
    "ptuning_v2": ("--learning-rate", "3e-2"),
}
EPOCHS = 8
REPO = Path(__file__).resolve().parents[1]


def tiny_config(tiny_model) -> dict:
    return json.loads((Path(tiny_model) / "config.json").read_text())


def expected_trainable(name: str, method_config, config: dict, num_labels: int = len(LABELS)) -> int:
    """Trainable parameters from the architecture, written out independently of the implementation."""
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    head = hidden * num_labels + num_labels
    if name == "adapter":
        bottleneck = max(1, hidden // method_config.reduction_factor)
        one = (hidden * bottleneck + bottleneck) + (bottleneck * hidden + hidden)  # down + up, with biases
        per_layer = 2 if method_config.variant == "houlsby" else 1
        return layers * per_layer * one + head
    if name == "ptuning_v2":
        tokens = method_config.num_virtual_tokens
        if not method_config.prefix_projection:
            return layers * tokens * 2 * hidden + head  # a key and a value vector per virtual token
        width = method_config.encoder_hidden_size
        mlp = (hidden * width + width) + (width * 2 * hidden + 2 * hidden)
        return layers * (tokens * hidden + mlp) + head
    if name == "prompt":
        return method_config.num_virtual_tokens * hidden + head
    raise AssertionError(name)


def fresh_model(tiny_model):
    from transformers import AutoModelForTokenClassification

    torch.manual_seed(0)
    return AutoModelForTokenClassification.from_pretrained(
        tiny_model, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)})


@pytest.fixture(scope="module")
def fixed_batch(tiny_tokenizer):
    batch = tiny_tokenizer([["Alice", "lives", "in", "Paris"], ["Bob", "met", "Carol"]],
                           is_split_into_words=True, padding=True, return_tensors="pt")
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def configured(name: str, **knobs):
    method = get_method(name)
    return method, method.config_cls(**knobs)


# --------------------------------------------------------------------------- parameter counts


@pytest.mark.parametrize("name, knobs", [
    ("adapter", {}),
    ("adapter", {"variant": "pfeiffer", "reduction_factor": 4, "non_linearity": "gelu"}),
    ("ptuning_v2", {}),
    ("ptuning_v2", {"num_virtual_tokens": 3, "prefix_projection": True, "encoder_hidden_size": 8}),
    ("prompt", {}),
    ("prompt", {"num_virtual_tokens": 5, "prompt_init": "random"}),
])
def test_trainable_parameters_match_formula(name, knobs, tiny_model):
    method, method_config = configured(name, **knobs)
    model = method.apply(fresh_model(tiny_model), method_config)
    trainable, _ = count_parameters(model)
    assert trainable == expected_trainable(name, method_config, tiny_config(tiny_model))
    head = [n for n, p in model.named_parameters() if p.requires_grad and "classifier" in n]
    assert len(head) == 2, head  # the head's weight and bias train (and are saved with the adapter)


def test_registry_and_defaults():
    assert set(NEW_METHODS) <= set(METHODS)
    rates = {name: METHODS[name].train_defaults["learning_rate"] for name in NEW_METHODS}
    assert rates["adapter"] < min(rates["ptuning_v2"], rates["prompt"])  # prompts train at far higher rates
    from peftner.config import parse_args

    cfg, adapter_cfg = parse_args(METHODS["adapter"], ["--variant", "houlsby", "--reduction-factor", "8"])
    assert (adapter_cfg.variant, adapter_cfg.reduction_factor, cfg.learning_rate) == ("houlsby", 8, 2.6e-3)


@pytest.mark.parametrize("name, argv, message", [
    ("adapter", ["--variant", "sideways"], "--variant must be one of houlsby, pfeiffer"),
    ("adapter", ["--non-linearity", "sigmoid"], "--non-linearity must be one of"),
    ("prompt", ["--num-virtual-tokens", "0"], "--num-virtual-tokens must be at least 1"),
    ("ptuning_v2", ["--prefix-dropout", "1.5"], "--prefix-dropout must be below 1, got 1.5"),
])
def test_bad_knobs_are_user_errors(name, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(name, argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------- forward contract


def test_adapter_starts_as_the_backbone(tiny_model, fixed_batch):
    base = fresh_model(tiny_model).eval()
    with torch.no_grad():
        expected = base(**fixed_batch).logits
    method, method_config = configured("adapter")
    model = method.apply(base, method_config).eval()
    with torch.no_grad():
        assert torch.equal(model(**fixed_batch).logits, expected)


def test_ptuning_v2_attention_matches_the_formula(tiny_model):
    """One prefixed self-attention against softmax(q·[pk;k]ᵀ/√d + mask)·[pv;v] written out by hand."""
    method, method_config = configured("ptuning_v2", num_virtual_tokens=3)
    model = method.apply(fresh_model(tiny_model), method_config).eval()
    layer = model.base_model.model.bert.encoder.layer[0].attention.self
    attention = layer.get_base_layer()
    hidden = torch.randn(2, 5, tiny_config(tiny_model)["hidden_size"])
    padding = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    additive = (1.0 - padding[:, None, None, :].float()) * torch.finfo(torch.float32).min
    heads, size = layer.num_heads, layer.head_size

    def split(x):
        return x.view(2, -1, heads, size).transpose(1, 2)

    prefix = layer.ptuning_v2_prefix["default"].view(3, 2, heads, size)
    keys = torch.cat([prefix[:, 0].transpose(0, 1).expand(2, -1, -1, -1), split(attention.key(hidden))], dim=2)
    values = torch.cat([prefix[:, 1].transpose(0, 1).expand(2, -1, -1, -1), split(attention.value(hidden))], dim=2)
    mask = torch.cat([torch.zeros(2, 1, 1, 3), additive], dim=-1)
    scores = split(attention.query(hidden)) @ keys.transpose(2, 3) / size ** 0.5 + mask
    expected = (scores.softmax(-1) @ values).transpose(1, 2).reshape(2, 5, -1)
    for implementation, layer_mask in (("eager", additive), ("sdpa", padding[:, None, None, :].bool())):
        attention.config._attn_implementation = implementation
        with torch.no_grad():
            output, _ = layer(hidden, attention_mask=layer_mask)
        torch.testing.assert_close(output, expected, atol=1e-5, rtol=1e-5)
    attention.config._attn_implementation = "sdpa"


@pytest.mark.parametrize("name", NEW_METHODS)
def test_one_logit_row_per_input_position_and_padding_is_inert(name, tiny_model, fixed_batch):
    method, method_config = configured(name)
    model = method.apply(fresh_model(tiny_model), method_config).eval()
    with torch.no_grad():
        logits = model(**fixed_batch).logits
        alone = model(input_ids=fixed_batch["input_ids"][1:, :5], attention_mask=fixed_batch["attention_mask"][1:, :5]).logits
    assert logits.shape[:2] == fixed_batch["input_ids"].shape
    # "[CLS] bob met carol [SEP]" padded in the batch or alone: same logits (the prefix/prompt sees no padding).
    torch.testing.assert_close(logits[1:, :5], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["prompt", "ptuning_v2"])
def test_prompt_loss_scores_real_positions_only(name, tiny_model, fixed_batch):
    method, method_config = configured(name, num_virtual_tokens=4)
    model = method.apply(fresh_model(tiny_model), method_config).eval()
    labels = torch.full_like(fixed_batch["input_ids"], -100)
    labels[0, 1:5] = torch.tensor([2, 0, 0, 1])
    labels[1, 1:4] = torch.tensor([2, 0, 2])
    outputs = model(**fixed_batch, labels=labels)
    assert outputs.logits.shape[1] == fixed_batch["input_ids"].shape[1]
    expected = torch.nn.functional.cross_entropy(outputs.logits.reshape(-1, len(LABELS)), labels.reshape(-1))
    torch.testing.assert_close(outputs.loss, expected)
    outputs.loss.backward()
    trained = [p for p in model.parameters() if p.requires_grad]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)


def test_prompt_logits_are_pefts_without_the_virtual_rows(tiny_model, fixed_batch):
    """What a plain PEFT user gets from the same model, minus the first num_virtual_tokens rows."""
    from peft import PeftModelForTokenClassification

    method, method_config = configured("prompt", num_virtual_tokens=4)
    model = method.apply(fresh_model(tiny_model), method_config).eval()
    with torch.no_grad():
        ours = model(**fixed_batch).logits
        plain = PeftModelForTokenClassification.forward(model, **fixed_batch).logits
    assert plain.shape[1] == ours.shape[1] + 4
    torch.testing.assert_close(ours, plain[:, 4:])


# --------------------------------------------------------------------------- training and reloading


@pytest.fixture(scope="module")
def trained(tmp_path_factory, memorisable_files, tiny_model):
    """Each method trained through ``recipe.main``; the in-memory model is captured on the way."""
    runs = {}
    with pytest.MonkeyPatch.context() as patch:
        for name in NEW_METHODS:
            method = METHODS[name]
            captured = {}

            def apply(model, config, method=method, captured=captured):
                captured["model"] = method.apply(model, config)
                return captured["model"]

            patch.setitem(METHODS, name, dataclasses.replace(method, apply=apply))
            out = tmp_path_factory.mktemp(f"{name}-run")
            metrics = main(name, memorise_argv(memorisable_files, tiny_model, out, "--epochs", EPOCHS,
                                               "--batch-size", 4, *LEARNING[name]))
            runs[name] = (out, metrics, captured["model"].eval())
    return runs


@pytest.mark.parametrize("name", NEW_METHODS)
def test_method_learns_memorisable_set(name, trained, tiny_model):
    _, metrics, _ = trained[name]
    assert metrics["test_f1"] >= 0.9, metrics["history"]
    assert metrics["method"] == name
    assert metrics["trainable_params"] == expected_trainable(name, METHODS[name].default_config(),
                                                             tiny_config(tiny_model))


RELOAD_SCRIPT = r"""
import json, sys
import peftner  # registers peftner's PEFT methods, without importing PEFT yet
assert "peft" not in sys.modules and "torch" not in sys.modules, "import peftner must stay light"
import torch
from peft import PeftModel
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForTokenClassification

job = json.loads(sys.argv[1])
batch = {k: torch.tensor(v) for k, v in job["batch"].items()}
results = {}
for name, adapter_dir in job["adapters"].items():
    config = AutoConfig.from_pretrained(adapter_dir)  # carries the label maps
    base = AutoModelForTokenClassification.from_pretrained(job["base"], config=config)
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    with torch.no_grad():
        logits = model(**batch).logits
    adapter_config = json.load(open(f"{adapter_dir}/adapter_config.json"))
    if adapter_config["peft_type"] == "PROMPT_TUNING":  # plain PEFT keeps the prompt's rows: drop them
        logits = logits[:, adapter_config["num_virtual_tokens"]:]
    results[name] = logits.contiguous()
save_file(results, job["output"])
"""


def test_reload_in_fresh_process_gives_identical_logits(trained, tiny_model, fixed_batch, tmp_path):
    from safetensors.torch import load_file

    job = {"base": str(tiny_model), "output": str(tmp_path / "logits.safetensors"),
           "batch": {k: v.tolist() for k, v in fixed_batch.items()},
           "adapters": {name: str(out / "adapter") for name, (out, _, _) in trained.items()}}
    env = subprocess_env()
    done = subprocess.run([sys.executable, "-c", RELOAD_SCRIPT, json.dumps(job)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    reloaded = load_file(job["output"])
    for name, (out, _, model) in trained.items():
        config = json.loads((out / "adapter" / "adapter_config.json").read_text())
        assert config["task_type"] == "TOKEN_CLS" and "classifier" in config["modules_to_save"]
        with torch.no_grad():
            in_memory = model(**fixed_batch).logits
        assert reloaded[name].shape == in_memory.shape
        assert torch.allclose(reloaded[name], in_memory, atol=1e-5), name
        predicted = in_memory[0, 1:5].argmax(-1).tolist()
        assert [LABELS[i] for i in predicted] == ["B-PER", "O", "O", "B-LOC"], name


def test_prompt_windows_leave_room_for_virtual_tokens(tmp_path, tiny_model):
    """The tiny model has 64 positions: a 70-word sentence must be windowed to 64 - 20 subwords."""
    long = (["Alice", "lives", "in", "Paris", "today"] * 14, ["B-PER", "O", "O", "B-LOC", "O"] * 14)
    path = write_conll(tmp_path / "long.conll", [long, (["Bob", "met", "Carol"], ["B-PER", "O", "B-PER"])])
    files = {"train": path, "validation": path, "test": path}
    metrics = main("prompt", memorise_argv(files, tiny_model, tmp_path / "out", "--epochs", 1))
    assert metrics["train_sentences"] == 2 and 0.0 <= metrics["test_f1"] <= 1.0


# --------------------------------------------------------------------------- PEFT registration


def test_registration_is_idempotent_and_guarded():
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
    from peft.utils import PeftType

    from peftner.tuners.adapter import BottleneckConfig, BottleneckModel
    from peftner.tuners.registry import peft_type, register, register_custom_methods

    register_custom_methods()
    register("peftner_bottleneck", BottleneckConfig, BottleneckModel, BottleneckModel.prefix)
    assert peft_type("PEFTNER_BOTTLENECK") is PeftType.PEFTNER_BOTTLENECK is PeftType("PEFTNER_BOTTLENECK")
    assert list(PeftType).count(PeftType.PEFTNER_BOTTLENECK) == 1
    assert PEFT_TYPE_TO_CONFIG_MAPPING["PEFTNER_BOTTLENECK"] is BottleneckConfig
    with pytest.raises(RuntimeError, match="already registered"):
        register("peftner_bottleneck", type("Other", (BottleneckConfig,), {}), BottleneckModel, BottleneckModel.prefix)


@pytest.mark.parametrize("r, alpha, expected", [(8, None, 160), (16, None, 320), (8, 100, 100)])
def test_randlora_scale_follows_its_rank_unless_set(r, alpha, expected, tiny_model):
    """randlora_alpha unset is 20 x r (the update's scale alpha / r stays 20 as a search moves r); PEFT's
    fixed 640 made r=8 four times as steep as r=32."""
    from transformers import AutoModelForTokenClassification

    method = get_method("randlora")
    model = AutoModelForTokenClassification.from_pretrained(tiny_model, num_labels=3)
    adapted = method.apply(model, dataclasses.replace(method.default_config(), r=r, randlora_alpha=alpha))
    assert adapted.peft_config["default"].randlora_alpha == expected
