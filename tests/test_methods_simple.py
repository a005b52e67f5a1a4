"""head, bitfit, ia3, int8_lora, qlora, peft (config file) and full --train-top-layers on the tiny BERT.

For every method: the trainable-parameter count against a formula written from the architecture
(not from the model), save → load in a fresh process → the same logits, and learning the
memorisable set through the recipe entry point.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import memorise_argv, subprocess_env
from peftner.config import parse_args
from peftner.errors import PeftnerError
from peftner.methods import count_parameters, get_method
from peftner.models.loading import backbone_bytes, load_token_classifier, saved_base_config
from peftner.recipe import main

ID2LABEL = {0: "O", 1: "B-PER", 2: "B-LOC"}
REPO = Path(__file__).resolve().parents[1]
LOHA = {"peft_type": "LOHA", "r": 2, "alpha": 4, "target_modules": ["query", "value"]}


@pytest.fixture(scope="module")
def loha_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("peft-config") / "loha.json"
    path.write_text(json.dumps(LOHA), encoding="utf-8")
    return path


def method_args(name: str, loha_file: Path) -> list[str]:
    return ["--peft-config", str(loha_file)] if name == "peft" else []


def build(name: str, model_dir, argv=()):
    """Load the tiny model the way the recipe does and apply the method."""
    method = get_method(name)
    _, method_config = parse_args(method, list(argv))
    load_kwargs = method.load_kwargs(method_config) if method.load_kwargs else {}
    model = load_token_classifier(str(model_dir), ID2LABEL, **load_kwargs)
    return method.apply(model, method_config), method_config


# --- exact trainable-parameter counts -----------------------------------------------------------

def expected_trainable(name: str, cfg) -> int:
    """Independent formulas in d (hidden), L (layers), F (intermediate), C (labels)."""
    d, L, F, C = cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size, len(ID2LABEL)
    head = d * C + C
    # LoRA defaults: r=4 on every linear layer, r·(d_in + d_out) each: q, k, v, attention-out (d×d),
    # intermediate (d×F) and output (F×d)
    lora_r = 4
    all_linear = 4 * (d + d) + 2 * (d + F)
    return {
        "head": head,
        # per layer: q, k, v, attention-out (4d) + LayerNorm (d) + intermediate (F) + output (d) + LayerNorm (d);
        # plus the embedding LayerNorm bias
        "bitfit": L * (7 * d + F) + d + head,
        # IA3 default (query-key-value-ffn): l_q, l_k, l_v (d each) and l_ff (F) per layer
        "ia3": L * (3 * d + F) + head,
        "int8_lora": L * lora_r * all_linear + head,
        "qlora": L * lora_r * all_linear + head,
        # LoHa: two Hadamard factors, each r·(d_in + d_out), on query and value
        "peft": L * 2 * 2 * LOHA["r"] * (d + d) + head,
    }[name]


def full_parameter_count(cfg) -> tuple[int, int, int]:
    """(embeddings, one encoder layer, head) parameter counts of BertForTokenClassification."""
    d, F, C = cfg.hidden_size, cfg.intermediate_size, len(ID2LABEL)
    embeddings = (cfg.vocab_size + cfg.max_position_embeddings + cfg.type_vocab_size) * d + 2 * d
    layer = 4 * (d * d + d) + 2 * d + (d * F + F) + (F * d + d) + 2 * d
    return embeddings, layer, d * C + C


@pytest.mark.parametrize("name", ["head", "bitfit", "ia3", "int8_lora", "qlora", "peft"])
def test_trainable_parameter_count(name, tiny_model, loha_file):
    model, _ = build(name, tiny_model, method_args(name, loha_file))
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    trainable, total = count_parameters(model)
    assert trainable == expected_trainable(name, base.config)
    embeddings, layer, head = full_parameter_count(base.config)
    # PEFT counts its own parameters plus the frozen original head that modules_to_save keeps beside
    # the trained copy
    added = trainable if get_method(name).is_peft else 0
    assert total == embeddings + base.config.num_hidden_layers * layer + head + added
    # the head is always trained, whatever the method
    head_params = [p for n, p in model.named_parameters() if "classifier" in n and p.requires_grad]
    assert sum(p.numel() for p in head_params) == head


@pytest.mark.parametrize("k", [0, 1, 2])
def test_full_train_top_layers_count(k, tiny_model):
    model, _ = build("full", tiny_model, ["--train-top-layers", str(k)])
    embeddings, layer, head = full_parameter_count(model.config)
    trainable, total = count_parameters(model)
    assert (trainable, total) == (k * layer + head, embeddings + model.config.num_hidden_layers * layer + head)
    trained_layers = {n.split(".")[3] for n, p in model.named_parameters() if p.requires_grad and ".layer." in n}
    n_layers = model.config.num_hidden_layers
    assert trained_layers == {str(i) for i in range(n_layers - k, n_layers)}


def test_full_train_top_layers_out_of_range(tiny_model):
    with pytest.raises(PeftnerError, match="between 0 and 2"):
        build("full", tiny_model, ["--train-top-layers", "3"])


def test_quantized_backbones_keep_head_in_full_precision(tiny_model):
    from bitsandbytes.nn import Linear4bit, Linear8bitLt

    fp32, _ = build("lora", tiny_model)
    for name, layer_cls, max_ratio in [("int8_lora", Linear8bitLt, 0.45), ("qlora", Linear4bit, 0.35)]:
        model, _ = build(name, tiny_model)
        base = model.get_base_model()
        encoder_linears = [m for n, m in base.named_modules() if ".layer." in n and isinstance(m, torch.nn.Linear)
                           and not n.endswith(("lora_A.default", "lora_B.default"))]
        assert encoder_linears and all(isinstance(m, layer_cls) for m in encoder_linears)
        head = base.classifier.modules_to_save["default"]
        assert type(head) is torch.nn.Linear and head.weight.dtype == torch.float32 and head.weight.requires_grad
        # the embeddings stay fp32 (bitsandbytes only quantizes linear layers): they bound the saving
        assert base.bert.embeddings.word_embeddings.weight.dtype == torch.float32
        assert backbone_bytes(model) < max_ratio * backbone_bytes(fp32)


def test_backbone_bytes_counts_int8_weights_and_scales(tiny_model):
    model, _ = build("int8_lora", tiny_model)
    base = model.get_base_model()
    from bitsandbytes.nn import Linear8bitLt

    int8 = [m for m in base.modules() if isinstance(m, Linear8bitLt)]
    assert len(int8) == 6 * base.config.num_hidden_layers
    frozen_fp = sum(p.numel() * p.element_size() for p in model.parameters()
                    if not p.requires_grad and p.dtype != torch.int8)
    expected = frozen_fp + sum(m.weight.numel() + 4 * m.out_features for m in int8)
    assert backbone_bytes(model) == expected
    with torch.no_grad():  # a forward moves the scales from the weight to the layer state: still counted
        model(input_ids=torch.tensor([[2, 5, 6, 3]]))
    assert backbone_bytes(model) == expected


def test_qlora_compute_dtype(tiny_model):
    from peftner.methods.qlora import resolve_compute_dtype

    assert resolve_compute_dtype("auto") == (torch.bfloat16 if torch.cuda.is_available() else torch.float32)
    with pytest.raises(PeftnerError, match="--compute-dtype must be one of"):
        resolve_compute_dtype("int3")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_qlora_on_gpu_uses_bf16_compute(tiny_model):
    model, _ = build("qlora", tiny_model)
    layer = model.get_base_model().bert.encoder.layer[0].attention.self.query.base_layer
    assert layer.weight.device.type == "cuda" and layer.compute_dtype == torch.bfloat16
    batch = torch.tensor([[2, 5, 6, 3]], device="cuda")
    out = model(input_ids=batch, labels=torch.zeros_like(batch))
    out.loss.backward()
    assert torch.isfinite(out.loss)


# --- peft config files --------------------------------------------------------------------------

def test_peft_config_file_errors(tmp_path, tiny_model):
    cases = {
        "bad.json": ('{"peft_type": "LOHA",\n "r": }', r"bad.json:2: invalid JSON"),
        "unknown.json": ('{"peft_type": "LOHA", "rank": 4}', r"unknown key\(s\) rank for LoHaConfig"),
        "type.json": ('{"peft_type": "NOPE"}', r"unknown peft_type 'NOPE'"),
        "prompt.json": ('{"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 4}', r"use the prompt or ptuning_v2"),
        "nomatch.json": ('{"peft_type": "LOHA", "target_modules": ["nothing"]}', r"nomatch.json: "),
    }
    for file_name, (text, message) in cases.items():
        (tmp_path / file_name).write_text(text, encoding="utf-8")
        with pytest.raises(PeftnerError, match=message):
            build("peft", tiny_model, ["--peft-config", str(tmp_path / file_name)])
    with pytest.raises(PeftnerError, match="needs --peft-config"):
        build("peft", tiny_model)


def test_recipe_user_errors_are_one_line(memorisable_files, tiny_model, tmp_path, capsys):
    for name, extra, message in [
            ("peft", [], "peftner: error: the peft method needs --peft-config FILE.json"),
            ("ia3", ["--target-modules", "key-value", "--feedforward-modules", "output.dense"],
             "peftner: error: ia3: --feedforward-modules output.dense must also be in --target-modules"),
            ("qlora", ["--compute-dtype", "int3"], "peftner: error: --compute-dtype must be one of")]:
        with pytest.raises(SystemExit) as exit_info:
            main(name, memorise_argv(memorisable_files, tiny_model, tmp_path / name, "--epochs", 1, *extra))
        stderr = capsys.readouterr().err  # (transformers' loading progress bar may precede the message)
        err = [line for line in stderr.splitlines() if "peftner" in line]
        assert exit_info.value.code == 2 and "Traceback" not in stderr, stderr
        assert len(err) == 1 and err[0].startswith(message), err


def test_peft_config_forces_token_classification_and_head(tiny_model, loha_file):
    model, _ = build("peft", tiny_model, ["--peft-config", str(loha_file)])
    config = model.peft_config["default"]
    assert config.peft_type.value == "LOHA" and config.task_type.value == "TOKEN_CLS"
    assert "classifier" in config.modules_to_save


# --- save → load in a fresh process → identical logits -------------------------------------------

LOADER = r"""
import json, sys, torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForTokenClassification
from peftner.config import parse_args
from peftner.methods import get_method

base_model, jobs, input_ids = sys.argv[1], json.loads(sys.argv[2]), torch.tensor(json.loads(sys.argv[3]))
for name, (adapter, argv, out) in jobs.items():
    method = get_method(name)
    _, method_config = parse_args(method, argv)
    if method.is_peft:
        from peft import PeftModel
        kwargs = method.load_kwargs(method_config) if method.load_kwargs else {}
        base = AutoModelForTokenClassification.from_pretrained(
            base_model, config=AutoConfig.from_pretrained(adapter), use_safetensors=True, **kwargs)
        model = PeftModel.from_pretrained(base, adapter)
    else:
        model = AutoModelForTokenClassification.from_pretrained(adapter, use_safetensors=True)
    # As peftner's loader does: on AVX512-BF16 CPUs bitsandbytes would otherwise repack 4-bit weights for
    # eval (other numerics; a crash below its 64-wide blocks, as in this tiny model).
    from peftner.models.loading import same_4bit_numerics_on_every_cpu
    same_4bit_numerics_on_every_cpu(model)
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=input_ids.to(model.device)).logits
    save_file({"logits": logits.float().contiguous().cpu()}, out)
"""

INPUT_IDS = [[2, 5, 11, 17, 6, 3], [2, 7, 8, 20, 12, 3]]
SAVED = ["full", "lora", "head", "bitfit", "ia3", "int8_lora", "qlora", "peft"]  # full, lora: the reference pair


@pytest.fixture(scope="module")
def reloaded_logits(tiny_model, loha_file, tmp_path_factory) -> dict:
    """Per method: (logits before saving, logits after loading in one fresh process)."""
    from safetensors.torch import load_file

    root = tmp_path_factory.mktemp("reload")
    expected, jobs = {}, {}
    for name in SAVED:
        argv = method_args(name, loha_file)
        model, _ = build(name, tiny_model, argv)
        torch.manual_seed(1)
        with torch.no_grad():  # move every trainable tensor away from its (often identity) initialisation
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(0.5 * torch.randn_like(p))
        model.eval()
        device = next(p for p in model.parameters() if p.requires_grad).device
        with torch.no_grad():
            expected[name] = model(input_ids=torch.tensor(INPUT_IDS, device=device)).logits.float().cpu()
        adapter = root / name
        model.save_pretrained(adapter, safe_serialization=True)  # as peftner.recipe.run saves
        saved_base_config(model).save_pretrained(adapter)
        jobs[name] = (str(adapter), argv, str(root / f"{name}.safetensors"))
    subprocess.run([sys.executable, "-c", LOADER, str(tiny_model), json.dumps(jobs), json.dumps(INPUT_IDS)],
                   check=True, cwd=REPO, env=subprocess_env())
    return {name: (expected[name], load_file(jobs[name][2])["logits"]) for name in SAVED}


@pytest.mark.parametrize("name", SAVED)
def test_save_then_load_in_fresh_process_gives_same_logits(name, reloaded_logits, tmp_path):
    expected, reloaded = reloaded_logits[name]
    assert torch.allclose(reloaded, expected, atol=1e-5), (reloaded - expected).abs().max()
    assert expected.std() > 0.1  # the perturbed trainable weights matter


def test_saved_config_has_no_quantization(tiny_model, tmp_path):
    model, _ = build("int8_lora", tiny_model)
    assert "quantization_config" in model.get_base_model().config.to_dict()
    saved_base_config(model).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert "quantization_config" not in saved and saved["id2label"] == {str(k): v for k, v in ID2LABEL.items()}


# --- every method learns the memorisable set through the recipe -----------------------------------

# 12 epochs of 3 batches; the random tiny backbone needs larger steps than the real defaults
LEARNING = {
    "head": ["--epochs", 12, "--learning-rate", "1e-1"],
    "bitfit": ["--epochs", 12, "--learning-rate", "5e-2"],
    "ia3": ["--epochs", 12, "--learning-rate", "5e-2"],
    "int8_lora": ["--epochs", 12, "--learning-rate", "3e-2"],
    "qlora": ["--epochs", 12, "--learning-rate", "3e-2"],
    "peft": ["--epochs", 12, "--learning-rate", "3e-2"],
}


@pytest.mark.parametrize("name", list(LEARNING))
def test_method_learns_memorisable_set(name, memorisable_files, tiny_model, loha_file, tmp_path):
    out = tmp_path / name
    metrics = main(name, memorise_argv(memorisable_files, tiny_model, out, *LEARNING[name],
                                       *method_args(name, loha_file)))
    assert metrics["method"] == name and metrics["test_f1"] >= 0.9, metrics["history"]
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["trainable_params"] == metrics["trainable_params"] > 0
    assert 0 < on_disk["backbone_bytes"] and on_disk["adapter_bytes"] > 0


def test_every_method_has_a_recipe_and_a_docs_section():
    from peftner.methods import FILE_METHODS, METHODS

    docs = (REPO / "docs" / "methods.md").read_text(encoding="utf-8")
    for name in (m.name for m in FILE_METHODS):
        assert f"\n## {name} — " in docs, name
        recipe = (REPO / "recipes" / f"{name}_ner.py").read_text(encoding="utf-8")
        assert f'main("{name}")' in recipe, name
    for name in set(METHODS) - {m.name for m in FILE_METHODS}:  # PEFT-type rows: the generated coverage table
        assert f"| `peftner train {name}` |" in docs, name
