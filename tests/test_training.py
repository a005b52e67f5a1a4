"""End-to-end runs on the tiny random BERT: learning, metrics.json contract, reloadable artifact."""

import json
import typing

import pytest
import torch

from conftest import memorise_argv, write_conll
from peftner.recipe import main
from peftner.report import RunMetrics


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, memorisable_files, tiny_model):
    out = tmp_path_factory.mktemp("lora-run")
    metrics = main("lora", memorise_argv(memorisable_files, tiny_model, out, "--epochs", 30,
                                         "--learning-rate", "1e-2"))
    return out, metrics


def test_lora_learns_memorisable_set(lora_run):
    _, metrics = lora_run
    assert metrics["test_f1"] >= 0.9
    assert metrics["best_dev_f1"] >= 0.9


def test_a_run_whose_dev_f1_stayed_zero_is_flagged_in_its_summary(lora_run):
    """A 0 that is a failed training (RandLoRA at 5e-3 on MiniLM diverged: updates 10x the weights) says so."""
    import dataclasses

    from peftner.report import format_summary

    learned = RunMetrics.read(lora_run[0] / "metrics.json")
    assert "warning" not in format_summary(learned)
    failed = dataclasses.replace(learned, history=[{**e, "dev_f1": 0.0} for e in learned.history])
    line = next(line for line in format_summary(failed).splitlines() if "warning" in line)
    assert f"all {len(learned.history)} evaluations" in line and "learning rate 0.01 " in line
    assert "peftner tune lora" in line
    assert "warning" not in format_summary(dataclasses.replace(failed, metric="token_accuracy"))


def test_metrics_json_fields_and_types(lora_run):
    out, metrics = lora_run
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics.to_dict()))
    assert list(on_disk) == RunMetrics.keys()  # every key, in the documented order
    hints = typing.get_type_hints(RunMetrics)
    for key in RunMetrics.keys():  # typed as declared, none missing (command: the recipe's)
        if key == "backbone":  # only for backbones built from package files (tests/test_packaged_backbones.py)
            assert on_disk[key] is None
            continue
        kinds = tuple(t for t in typing.get_args(hints[key]) if t is not type(None))
        assert isinstance(on_disk[key], kinds), (key, type(on_disk[key]))
    assert on_disk["method"] == "lora" and on_disk["metric"] == "entity_f1"
    assert 0 < on_disk["trainable_params"] < on_disk["total_params"]
    assert on_disk["trainable_percent"] == pytest.approx(100 * on_disk["trainable_params"] / on_disk["total_params"])
    assert on_disk["num_processes"] == 1 and on_disk["train_tokens_per_second"] > 0
    assert set(on_disk["per_type"]) == {"PER", "LOC"}
    assert on_disk["versions"]["torch"] and on_disk["versions"]["peft"]
    adapter = out / "adapter"
    assert on_disk["adapter_bytes"] == (adapter / "adapter_model.safetensors").stat().st_size
    for name in ("adapter_config.json", "config.json", "tokenizer.json"):
        assert (adapter / name).exists(), name


def test_lora_adapter_reloads_with_plain_peft(lora_run, tiny_model, tiny_tokenizer):
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForTokenClassification

    out, _ = lora_run
    config = AutoConfig.from_pretrained(out / "adapter")
    assert config.id2label[0] == "O" and set(config.label2id) == {"O", "B-LOC", "B-PER"}
    base = AutoModelForTokenClassification.from_pretrained(tiny_model, config=config)
    model = PeftModel.from_pretrained(base, out / "adapter").eval()
    batch = tiny_tokenizer(["Alice lives in Paris"], return_tensors="pt")
    with torch.no_grad():
        predicted = model(**batch).logits.argmax(-1)[0, 1:-1].tolist()
    assert [config.id2label[i] for i in predicted] == ["B-PER", "O", "O", "B-LOC"]


def test_full_recipe_on_conll_files_and_pos_tags_use_token_accuracy(tmp_path, tiny_model):
    sentences = [(["alice", "lives", "in", "paris"], ["NNP", "VBZ", "IN", "NNP"]),
                 (["bob", "met", "carol"], ["NNP", "VBD", "NNP"])] * 4
    path = write_conll(tmp_path / "pos.conll", sentences)
    files = {"train": path, "validation": path, "test": path}
    metrics = main("full", memorise_argv(files, tiny_model, tmp_path / "out", "--epochs", 30,
                                         "--learning-rate", "3e-3"))
    assert metrics["metric"] == "token_accuracy"
    assert metrics["test_f1"] == metrics["test_accuracy"] >= 0.9
    assert metrics["trainable_params"] == metrics["total_params"]
    assert (tmp_path / "out" / "adapter" / "model.safetensors").exists()


def test_yaml_config_and_flag_precedence(tmp_path):
    from peftner.config import parse_args
    from peftner.methods import get_method

    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("epochs: 3\nlearning-rate: 0.002\nmethod:\n  r: 4\n", encoding="utf-8")
    lora = get_method("lora")
    cfg, method_cfg = parse_args(lora, ["--config", str(yaml_file), "--epochs", "7"])
    assert (cfg.epochs, cfg.learning_rate, method_cfg.r) == (7, 0.002, 4)
    cfg, method_cfg = parse_args(lora, [])
    assert cfg.learning_rate == lora.train_defaults["learning_rate"] and cfg.output_dir == "runs/lora"
    cfg, method_cfg = parse_args(lora, ["--target-modules", "query,key", "--label-all-subwords"])
    assert method_cfg.target_modules == ["query", "key"] and cfg.label_all_subwords is True


def test_user_errors_exit_2_with_one_line(tmp_path, tiny_model, capsys):
    bad = tmp_path / "bad.conll"
    bad.write_text("alice\tB-PER\nlives\n", encoding="utf-8")
    files = {"train": bad, "validation": bad, "test": bad}
    with pytest.raises(SystemExit) as exit_info:
        main("lora", memorise_argv(files, tiny_model, tmp_path / "o", "--epochs", 1))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"peftner: error: {bad}:2: expected a token and a tag separated by a tab or spaces, got 'lives'"]
