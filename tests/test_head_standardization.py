"""--standardize-head: a new head trained as if its input were standardised; its saved head a plain Linear layer."""

import json
import shutil

import torch

from conftest import memorise_argv
from peftner.recipe import PREDICTIONS_FILE, main
from peftner.training.head_standardization import SHARE_THRESHOLD, HeadStandardization, trainable_head


def _features(n=64, width=12, classes=4, seed=0):
    """Features with one large shared direction (as multilingual-e5-small's), and their labels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, width, generator=g) * 0.1 + 2.0 * torch.randn(width, generator=g)
    return x, torch.randint(0, classes, (n,), generator=g)


def _adamw(head):
    # no weight decay: AdamW decays W itself, which the plain head can follow only up to the scale s
    return torch.optim.AdamW(head.parameters(), lr=0.05, weight_decay=0.0)


def test_standardised_updates_equal_training_a_standardised_head():
    x, y = _features()
    mean, std = x.mean(0), x.std(0, unbiased=False)
    torch.manual_seed(0)
    plain = torch.nn.Linear(12, 4)
    standardised = torch.nn.Linear(12, 4)  # trained with HeadStandardization, on the raw features
    reference = torch.nn.Linear(12, 4)  # the standardised parametrisation itself, on (x - mean) / std
    standardised.load_state_dict(plain.state_dict())
    with torch.no_grad():  # the same logits at the start: V = W s, c = b + W mean
        reference.weight.copy_(plain.weight * std)
        reference.bias.copy_(plain.bias + plain.weight @ mean)
    hooks = HeadStandardization(standardised, mean, std, share=1.0, log_prior=torch.zeros(4))
    optimizers = {m: _adamw(m) for m in (plain, standardised, reference)}
    for _ in range(30):
        for model, inputs in ((plain, x), (standardised, x), (reference, (x - mean) / std)):
            loss = torch.nn.functional.cross_entropy(model(inputs), y)
            loss.backward()
            if model is standardised:
                hooks.before_step()
            optimizers[model].step()
            if model is standardised:
                hooks.after_step()
            optimizers[model].zero_grad()
    assert torch.allclose(standardised(x), reference((x - mean) / std), atol=1e-4)
    assert not torch.allclose(plain(x), reference((x - mean) / std), atol=1e-2)  # the training differs


def test_a_new_heads_bias_starts_at_the_tags_log_frequencies():
    x, _ = _features()
    head = torch.nn.Linear(12, 4)
    prior = torch.tensor([0.7, 0.1, 0.1, 0.1]).log()
    HeadStandardization(head, x.mean(0), x.std(0), share=1.0, log_prior=prior).start()
    assert torch.allclose(head(x.mean(0)), prior, atol=1e-5)  # at the mean input: the prior's logits


def test_the_trainable_head_is_found_under_peft(tiny_model):
    from peftner.methods import get_method
    from peftner.models.loading import load_token_classifier

    model = load_token_classifier(str(tiny_model), {0: "O", 1: "B-X", 2: "I-X"})
    assert trainable_head(model) is model.classifier  # full fine-tuning: the plain head
    method = get_method("lora")
    wrapped = method.apply(model, method.default_config())
    head = trainable_head(wrapped)
    assert head is not None and head is not wrapped.base_model.model.classifier.original_module
    assert head.weight.requires_grad and head.out_features == 3
    for parameter in wrapped.parameters():
        parameter.requires_grad_(False)
    assert trainable_head(wrapped) is None  # a frozen head is left alone


def test_a_standardised_run_reloads_exactly_and_resumes(tiny_model, memorisable_files, tmp_path):
    from peftner.reuse import Tagger

    flags = ["--epochs", 2, "--learning-rate", "3e-2", "--standardize-head", "on", "--checkpoint-every", 1,
             "--keep-checkpoints", 20]
    out = tmp_path / "run"
    first = main("lora", memorise_argv(memorisable_files, tiny_model, out, *flags))
    assert first["head_standardization"]["standardized"] is True and 0 < first["head_standardization"]["share_of_mean"] < 1
    rows = [line.split("\t") for line in (out / PREDICTIONS_FILE).read_text().split("\n\n")[0].splitlines()]
    tagger = Tagger.from_pretrained(out / "adapter", device="cpu")
    assert tagger.predict([[r[0] for r in rows]])[0].tags == [r[2] for r in rows]  # the plain head scores the same
    for late in sorted((out / "checkpoints").iterdir())[2:]:  # back into the first epoch
        shutil.rmtree(late)
    resumed = main("lora", memorise_argv(memorisable_files, tiny_model, out, *flags, "--resume"))
    assert {k: resumed[k] for k in ("history", "test_accuracy", "head_standardization")} == \
           {k: first[k] for k in ("history", "test_accuracy", "head_standardization")}


def test_auto_standardises_only_a_shared_direction_and_otherwise_changes_nothing(tiny_model, memorisable_files,
                                                                                 tmp_path):
    runs = {mode: main("lora", memorise_argv(memorisable_files, tiny_model, tmp_path / mode, "--epochs", 1,
                                             "--standardize-head", mode)) for mode in ("auto", "off", "on")}
    recorded = json.loads((tmp_path / "auto" / "metrics.json").read_text())["head_standardization"]
    assert runs["off"]["head_standardization"] is None  # off: nothing measured
    assert recorded["standardized"] == (recorded["share_of_mean"] >= SHARE_THRESHOLD)
    plain = "on" if recorded["standardized"] else "off"  # the run auto must equal, step for step
    assert runs["auto"]["history"] == runs[plain]["history"]
    assert runs["on"]["history"] != runs["off"]["history"]  # the comparison above can fail
