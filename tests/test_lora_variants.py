"""LoRA's variants as flags: each really applies (not a plain LoRA under another name) or is refused in
one line. Training and exact reloading of every variant is in tests/test_peft_coverage.py."""

from __future__ import annotations

import pytest
import torch

from peftner.methods import METHODS, count_parameters
from peftner.recipe import main
from peftner.tuners.lora_init import lora_layers

LABELS = 3


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    from peftner.testing.tiny import build_checkpoint

    return build_checkpoint("bert", tmp_path_factory.mktemp("tiny-bert"), hidden=32)


def fresh(backbone):
    from transformers import AutoModelForTokenClassification

    torch.manual_seed(0)
    return AutoModelForTokenClassification.from_pretrained(backbone, num_labels=LABELS)


def batches(n: int = 4):
    generator = torch.Generator().manual_seed(1)
    for _ in range(n):
        ids = torch.randint(5, 25, (4, 6), generator=generator)
        labels = torch.randint(0, LABELS, (4, 6), generator=generator)
        labels[:, 0] = -100
        yield {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels,
               "word_index": torch.zeros_like(ids), "example_id": torch.arange(4)}


def initial_adapter(backbone, **knobs) -> dict:
    """The LoRA weights a run of ``lora`` with ``knobs`` starts its first step from (seed 0)."""
    method = METHODS["lora"]
    config = method.config_cls(target_modules=["query", "value"], **knobs)
    torch.manual_seed(0)
    model = method.apply(fresh(backbone), config)
    model = method.initialize(model, config, batches())
    return {name: (layer.lora_A["default"].weight.detach().clone(), layer.lora_B["default"].weight.detach().clone())
            for name, layer in lora_layers(model)}


@pytest.mark.parametrize("init", ["eva", "corda", "lora_ga", "pissa", "olora"])
def test_initialisations_start_elsewhere_than_the_default(init, backbone):
    default, other = initial_adapter(backbone), initial_adapter(backbone, init_lora_weights=init)
    assert default.keys() == other.keys()
    changed = [name for name in default
               if default[name][0].shape != other[name][0].shape or not torch.equal(default[name][0], other[name][0])]
    assert changed == list(default), f"{init} left {set(default) - set(changed)} at the default start"
    if init != "eva":  # EVA starts with B = 0 like the default; the others move part of W into B·A
        assert all(other[name][1].abs().sum() > 0 for name in other)


def test_the_default_ignores_the_data_pass(backbone):
    once, again = initial_adapter(backbone), initial_adapter(backbone, init_batches=1)
    assert all(torch.equal(once[n][0], again[n][0]) and not again[n][1].any() for n in once)


def test_dora_trains_a_magnitude_per_output(backbone):
    def trainable(**knobs):
        method = METHODS["lora"]
        return count_parameters(method.apply(fresh(backbone), method.config_cls(target_modules=["query", "value"],
                                                                                **knobs)))[0]

    hidden, layers = 32, 2
    assert trainable(use_dora=True) - trainable() == layers * 2 * hidden  # query and value: d_out each


@pytest.mark.parametrize("method, argv, message", [
    ("lora", ["--init-lora-weights", "loftq"], "--init-lora-weights loftq: LoftQ replaces the backbone's weights"),
    ("lora", ["--init-lora-weights", "pissa_niter_x"], "--init-lora-weights must be one of default, gaussian"),
    ("lora", ["--init-lora-weights", "olora", "--use-dora"], "--init-lora-weights olora with --use-dora"),
    ("int8_lora", ["--init-lora-weights", "pissa"], "--init-lora-weights pissa moves part of each weight"),
    ("qlora", ["--init-lora-weights", "corda"], "--init-lora-weights corda moves part of each weight"),
])
def test_what_cannot_apply_is_one_line(method, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(method, argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and err.count("\n") == 1, err


def test_dora_on_a_cpu_int8_backbone_is_one_line(tiny_model, memorisable_files, tmp_path, capsys):
    """bitsandbytes' CPU int8 layers lose their scales when DoRA reads the weights: refused, not a traceback."""
    from conftest import memorise_argv

    with pytest.raises(SystemExit) as exit_info:
        main("int8_lora", memorise_argv(memorisable_files, tiny_model, tmp_path / "run", "--use-dora", "--cpu"))
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]  # past the load bars
    assert exit_info.value.code == 2 and len(errors) == 1, errors
    assert errors[0].startswith("peftner: error: int8_lora --use-dora: on CPU")


@pytest.mark.parametrize("init", ["eva", "pissa_niter_4", "lora_ga"])
def test_resume_after_an_initialisation_reproduces_the_run(init, tiny_model, memorisable_files, tmp_path):
    """The data pass (or the randomised SVD) runs again on --resume, before the checkpoint is restored,
    and gives the same start: the resumed run scores and saves what the uninterrupted one did."""
    import shutil

    from safetensors.torch import load_file

    from conftest import memorise_argv

    flags = ["--epochs", 2, "--learning-rate", "3e-2", "--init-lora-weights", init, "--checkpoint-every", 1,
             "--keep-checkpoints", 20]
    out = tmp_path / "run"
    first = main("lora", memorise_argv(memorisable_files, tiny_model, out, *flags))
    saved = load_file(out / "adapter" / "adapter_model.safetensors")
    for late in sorted((out / "checkpoints").iterdir())[2:]:  # back into the first epoch
        shutil.rmtree(late)
    resumed = main("lora", memorise_argv(memorisable_files, tiny_model, out, *flags, "--resume"))
    assert {k: resumed[k] for k in ("history", "test_accuracy", "trainable_params")} == \
           {k: first[k] for k in ("history", "test_accuracy", "trainable_params")}
    again = load_file(out / "adapter" / "adapter_model.safetensors")
    assert again.keys() == saved.keys() and all(torch.equal(again[k], saved[k]) for k in saved)
