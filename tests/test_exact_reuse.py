"""Exact reuse: for every method, ``peftner predict`` in a fresh process tags the test file exactly as
the run scored it, so word accuracy from its output equals ``test_accuracy`` in metrics.json.

Each run trains the tiny BERT for a few steps through the recipe entry point; the scored tags are
the run's ``test_predictions.conll``. Quantized runs are reloaded quantized (checked in process),
AdaLoRA really allocates ranks (and resumes with the same allocation), and head / BitFit save only
what trained.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import memorisable_sentences, memorise_argv, subprocess_env, write_conll
from peftner.recipe import PREDICTIONS_FILE, main
from peftner.reuse import Tagger
from peftner.reuse.text import read_tagged_conll

pytestmark = pytest.mark.slow  # minutes of training: run first (conftest.py)

REPO = Path(__file__).resolve().parents[1]
LOHA = {"peft_type": "LOHA", "r": 2, "alpha": 4, "target_modules": ["query", "value"]}
ADALORA = {"peft_type": "ADALORA", "init_r": 4, "target_r": 2, "lora_alpha": 8, "target_modules": ["query", "value"]}
# case -> (method, flags): 3 epochs of 3 batches, rates high enough that the random tiny model moves
CASES = {
    "full": ("full", ["--learning-rate", "3e-3"]),  # 9 steps: the standardised head starts at all O
    "head": ("head", ["--learning-rate", "1e-1"]),
    "bitfit": ("bitfit", ["--learning-rate", "5e-2"]),
    "lora": ("lora", ["--learning-rate", "3e-2"]),
    # base-rewriting initialisations, saved as a plain LoRA delta (pissa_niter_4's SVD is randomised)
    "lora_pissa_niter_4": ("lora", ["--learning-rate", "3e-2", "--init-lora-weights", "pissa_niter_4"]),
    "lora_olora": ("lora", ["--learning-rate", "3e-2", "--init-lora-weights", "olora"]),
    "adapter": ("adapter", ["--learning-rate", "2e-2"]),
    "prompt": ("prompt", ["--learning-rate", "5e-2", "--num-virtual-tokens", "4"]),
    "ptuning_v2": ("ptuning_v2", ["--learning-rate", "3e-2"]),
    "ia3": ("ia3", ["--learning-rate", "5e-2"]),
    "int8_lora": ("int8_lora", ["--learning-rate", "3e-2"]),
    "qlora": ("qlora", ["--learning-rate", "3e-2"]),
    "loha": ("peft", ["--learning-rate", "3e-2", "--peft-config", "loha.json"]),
    "adalora": ("peft", ["--learning-rate", "3e-2", "--peft-config", "adalora.json"]),
}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exact-reuse")
    train = write_conll(root / "train.conll", memorisable_sentences(24))
    test = write_conll(root / "test.conll", memorisable_sentences(16, seed=7))  # unseen pairs: errors remain
    return {"root": root, "train": train, "validation": train, "test": test}


@pytest.fixture(scope="module")
def runs(data, tiny_model) -> dict[str, Path]:
    """Every case trained once; then one ``peftner predict`` process per case (two at a time)."""
    root, test = data["root"], data["test"]
    files = {split: data[split] for split in ("train", "validation", "test")}
    (root / "loha.json").write_text(json.dumps(LOHA))
    (root / "adalora.json").write_text(json.dumps(ADALORA))
    for case, (method, flags) in CASES.items():
        flags = [str(root / f) if f.endswith(".json") else f for f in flags]
        main(method, memorise_argv(files, tiny_model, root / case, "--epochs", 3, *flags))
    pending = list(CASES)
    running: list[tuple[str, subprocess.Popen]] = []
    while pending or running:
        while pending and len(running) < 2:
            case = pending.pop(0)
            command = [sys.executable, "-m", "peftner.cli", "predict", "--adapter", str(root / case / "adapter"),
                       "--input", str(test), "--output-format", "conll", "--output", str(root / case / "predict.conll")]
            running.append((case, subprocess.Popen(command, cwd=root, env=subprocess_env(),
                                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
        case, process = running.pop(0)
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, f"{case}: {stderr[-2000:]}"
    return {"root": root, "test": test, **{case: root / case for case in CASES}}


@pytest.mark.parametrize("case", list(CASES))
def test_predict_reproduces_the_scored_test_accuracy(case, runs):
    metrics = json.loads((runs[case] / "metrics.json").read_text())
    gold = [[w[-1] for w in s] for s in read_tagged_conll(runs["test"])]
    scored = read_tagged_conll(runs[case] / PREDICTIONS_FILE)  # token, gold, predicted
    predicted = read_tagged_conll(runs[case] / "predict.conll")  # token, tag
    assert [[w[0] for w in s] for s in predicted] == [[w[0] for w in s] for s in scored]
    assert [[w[1] for w in s] for s in scored] == gold
    tags = [[w[1] for w in s] for s in predicted]
    assert tags == [[w[2] for w in s] for s in scored]
    correct = sum(p == g for ps, gs in zip(tags, gold) for p, g in zip(ps, gs))
    assert correct / sum(map(len, gold)) == metrics["test_accuracy"]
    # Not a vacuous equality: the scored tags vary and are neither all right nor all wrong.
    assert len({t for s in tags for t in s}) >= 2 and 0 < metrics["test_accuracy"] < 1, tags


def _layer_types(tagger) -> set[str]:
    return {type(m).__name__ for m in tagger.model.modules()}


@pytest.mark.parametrize("case, layer, backbone", [("int8_lora", "Linear8bitLt", "int8"), ("qlora", "Linear4bit", "nf4")])
def test_quantized_runs_reload_quantized_unless_asked(case, layer, backbone, runs):
    meta = json.loads((runs[case] / "adapter" / "peftner.json").read_text())
    assert meta["precision"]["backbone"] == backbone and meta["precision"]["quantization_config"]
    assert f"Backbone precision:** {backbone}" in (runs[case] / "adapter" / "README.md").read_text()
    quantized = Tagger.from_pretrained(runs[case] / "adapter", device="cpu")
    full = Tagger.from_pretrained(runs[case] / "adapter", device="cpu", full_precision=True)
    assert layer in _layer_types(quantized) and layer not in _layer_types(full)
    assert quantized.memory_report()["backbone"] < full.memory_report()["backbone"]
    words = [w[0] for w in read_tagged_conll(runs["test"])[0]]
    assert len(full.predict([words])[0].tags) == len(words)  # full precision still tags (maybe differently)


def test_adalora_allocates_ranks_and_saves_the_pruned_adapter(runs):
    config = json.loads((runs["adalora"] / "adapter" / "adapter_config.json").read_text())
    metrics = json.loads((runs["adalora"] / "metrics.json").read_text())
    assert config["total_step"] == metrics["optimizer_steps"] == 9
    ranks = {name: sum(kept) for name, kept in config["rank_pattern"].items()}
    assert len(ranks) == 4 and sum(ranks.values()) == ADALORA["target_r"] * 4  # the final budget
    assert set(ranks.values()) != {ADALORA["init_r"]} and max(ranks.values()) > ADALORA["target_r"]  # uneven
    weights = load_file(runs["adalora"] / "adapter" / "adapter_model.safetensors")
    saved = {k.removeprefix("base_model.model.").replace(".lora_E", ""): v.shape[0]
             for k, v in weights.items() if ".lora_E" in k}
    assert saved == {k.replace(".lora_E", ""): r for k, r in ranks.items()}


def test_adalora_resume_allocates_the_same_ranks(runs, tiny_model, tmp_path):
    files = {"train": runs["root"] / "train.conll", "validation": runs["root"] / "train.conll", "test": runs["test"]}
    flags = ["--epochs", 3, "--learning-rate", "3e-2", "--peft-config", runs["root"] / "adalora.json",
             "--checkpoint-every", 1, "--keep-checkpoints", 20]
    out = tmp_path / "run"
    first = main("peft", memorise_argv(files, tiny_model, out, *flags))
    for late in sorted((out / "checkpoints").iterdir())[5:]:  # back to mid-epoch 2, mid-allocation
        shutil.rmtree(late)
    resumed = main("peft", memorise_argv(files, tiny_model, out, *flags, "--resume"))
    assert {k: resumed[k] for k in ("history", "test_accuracy", "test_f1")} == \
           {k: first[k] for k in ("history", "test_accuracy", "test_f1")}
    again = json.loads((out / "adapter" / "adapter_config.json").read_text())["rank_pattern"]
    original = json.loads((runs["adalora"] / "adapter" / "adapter_config.json").read_text())["rank_pattern"]
    assert again == original and (out / "checkpoints").is_dir()


def test_adalora_schedule_that_does_not_fit_is_refused(runs, tiny_model, tmp_path, capsys):
    config = tmp_path / "late.json"
    config.write_text(json.dumps({**ADALORA, "tinit": 5, "tfinal": 5}))
    files = {"train": runs["root"] / "train.conll", "validation": runs["root"] / "train.conll", "test": runs["test"]}
    with pytest.raises(SystemExit) as exit_info:
        main("peft", memorise_argv(files, tiny_model, tmp_path / "out", "--epochs", 1, "--peft-config", config))
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "peftner: error: AdaLoRA: tinit (5) + tfinal (5) leave no rank-allocation steps in this run's 3 "
        "optimizer steps; lower them in the --peft-config file or train longer")


@pytest.mark.parametrize("case", ["head", "bitfit"])
def test_head_and_bitfit_save_only_what_trained(case, runs, tiny_model, tmp_path):
    from peftner.reuse import export_model
    from peftner.reuse.partial import TRAINED_FILE

    adapter = runs[case] / "adapter"
    metrics = json.loads((runs[case] / "metrics.json").read_text())
    assert not list(adapter.glob("model*.safetensors")) and not (adapter / "adapter_config.json").exists()
    saved = load_file(adapter / TRAINED_FILE)
    expected = ["classifier.weight", "classifier.bias"] if case == "head" else None
    assert all(k.startswith("classifier.") or k.endswith(".bias") for k in saved)
    assert expected is None or sorted(saved) == sorted(expected)
    assert sum(v.numel() for v in saved.values()) == metrics["trainable_params"]
    assert metrics["adapter_bytes"] == (adapter / TRAINED_FILE).stat().st_size < 4 * metrics["trainable_params"] + 4096
    full_bytes = json.loads((runs["full"] / "metrics.json").read_text())["adapter_bytes"]
    assert metrics["adapter_bytes"] < full_bytes / 10
    # Export (base + trained tensors = a plain model) and continued training still work.
    words = [[w[0] for w in s] for s in read_tagged_conll(runs["test"])]
    exported = export_model(adapter, tmp_path / "plain")
    assert [p.tags for p in Tagger.from_pretrained(exported, device="cpu").predict(words)] == \
           [p.tags for p in Tagger.from_pretrained(adapter, device="cpu").predict(words)]
    files = {"train": runs["root"] / "train.conll", "validation": runs["root"] / "train.conll", "test": runs["test"]}
    main(case, memorise_argv(files, tiny_model, tmp_path / "more", "--epochs", 1, "--learning-rate", 0,
                             "--init-adapter", adapter))
    again = load_file(tmp_path / "more" / "adapter" / TRAINED_FILE)
    assert set(again) == set(saved) and all(torch.equal(again[k], saved[k]) for k in saved)


def test_mixed_precision_run_is_replayed_under_its_autocast(data, tiny_model, tmp_path):
    out = tmp_path / "bf16"  # Accelerate fixes the mixed precision once per process: train in a new one
    argv = memorise_argv(data, tiny_model, out, "--epochs", 3, "--learning-rate", "3e-2", "--mixed-precision", "bf16")
    subprocess.run([sys.executable, str(REPO / "recipes" / "lora_ner.py"), *argv], check=True, cwd=tmp_path,
                   env=subprocess_env(), capture_output=True)
    assert json.loads((out / "adapter" / "peftner.json").read_text())["precision"]["mixed_precision"] == "bf16"
    scored = read_tagged_conll(out / PREDICTIONS_FILE)
    words = [[w[0] for w in s] for s in scored]
    replayed = Tagger.from_pretrained(out / "adapter", device="cpu").predict(words)
    assert [p.tags for p in replayed] == [[w[2] for w in s] for s in scored]
    full = Tagger.from_pretrained(out / "adapter", device="cpu", full_precision=True).predict(words)
    assert [p.scores for p in replayed] != [p.scores for p in full]  # bf16 arithmetic, not float32
