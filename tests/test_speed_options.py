"""Speed options change how fast a run goes, not what it learns: --optimizer-kernel, --compile, --threads."""

import pytest
import torch
from safetensors.torch import load_file

from conftest import memorise_argv
from peftner.config import parse_args
from peftner.errors import PeftnerError
from peftner.methods import get_method
from peftner.recipe import main
from peftner.training.loop import build_optimizer


def _full_run(files, model, out, *extra):
    metrics = main("full", memorise_argv(files, model, out, "--epochs", 3, "--learning-rate", "3e-3",
                                         "--keep-checkpoints", 0, *extra))
    return metrics, load_file(out / "adapter" / "model.safetensors")


def _assert_same_training(a, b, atol):
    (metrics_a, weights_a), (metrics_b, weights_b) = a, b
    assert metrics_a["test_f1"] == metrics_b["test_f1"]
    for x, y in zip(metrics_a["history"], metrics_b["history"]):
        assert x["train_loss"] == pytest.approx(y["train_loss"], abs=1e-5)
    assert weights_a.keys() == weights_b.keys()
    worst = max((weights_a[k] - weights_b[k]).abs().max().item() for k in weights_a)
    assert worst <= atol, f"weights differ by {worst}"


@pytest.fixture(scope="module")
def eager_foreach(memorisable_files, tiny_model, tmp_path_factory):
    return _full_run(memorisable_files, tiny_model, tmp_path_factory.mktemp("eager"))


def test_optimizer_kernel_choice():
    layer = torch.nn.Linear(4, 4)
    assert build_optimizer(layer, 1e-3, 0.01, "fused").defaults["fused"] is True
    auto_cpu = build_optimizer(layer, 1e-3, 0.01, "auto", device_type="cpu").defaults
    assert auto_cpu["foreach"] is True and not auto_cpu["fused"]
    assert build_optimizer(layer, 1e-3, 0.01, "auto", device_type="cuda").defaults["fused"] is True
    with pytest.raises(PeftnerError, match="optimizer_kernel must be one of"):
        build_optimizer(layer, 1e-3, 0.01, "turbo")
    with pytest.raises(PeftnerError, match="--optimizer-kernel must be one of auto, fused, foreach, got 'turbo'"):
        parse_args(get_method("full"), ["--optimizer-kernel", "turbo"])
    with pytest.raises(PeftnerError, match="--threads must be at least 1, got 0"):
        parse_args(get_method("full"), ["--threads", "0"])


def test_fused_optimizer_trains_like_foreach(eager_foreach, memorisable_files, tiny_model, tmp_path):
    fused = _full_run(memorisable_files, tiny_model, tmp_path / "fused", "--optimizer-kernel", "fused")
    assert fused[0]["config"]["optimizer_kernel"] == "fused"
    _assert_same_training(eager_foreach, fused, atol=1e-4)


def test_compiled_training_step_matches_eager(eager_foreach, memorisable_files, tiny_model, tmp_path):
    # Same dropout masks as eager (fallback_random), so only float rounding may differ.
    compiled = _full_run(memorisable_files, tiny_model, tmp_path / "compiled", "--compile")
    assert compiled[0]["config"]["compile"] is True
    _assert_same_training(eager_foreach, compiled, atol=1e-4)


def test_threads_option_sets_torch_threads(memorisable_files, tiny_model, tmp_path):
    before = torch.get_num_threads()
    try:
        main("lora", memorise_argv(memorisable_files, tiny_model, tmp_path / "t", "--epochs", 1,
                                   "--keep-checkpoints", 0, "--threads", 2))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_throughput_ratios_and_targets():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from throughput import ratios

    summary = {"peftner_full": {"train_tokens_per_second": 2600.0, "test_f1": 0.40},
               "trainer_default": {"train_tokens_per_second": 1000.0, "test_f1": 0.405},
               "trainer_group_by_length": {"train_tokens_per_second": 2000.0, "test_f1": 0.45}}
    out = ratios(summary)
    assert set(out) == {"full_vs_default", "full_vs_group_by_length"}  # absent recipes are skipped
    assert out["full_vs_default"] == {"speed": 2.6, "f1_difference": pytest.approx(-0.005), "target": 2.0,
                                      "met": True}
    # fast enough (1.3x) but 5 F1 points worse: not "at equal F1"
    assert out["full_vs_group_by_length"]["speed"] == pytest.approx(1.3)
    assert out["full_vs_group_by_length"]["met"] is False
