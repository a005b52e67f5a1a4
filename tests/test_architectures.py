"""Architecture x method matrix on tiny random models of each architecture (peftner.support).

Every cell runs the real recipe (``recipe.main``) with no method flags: it either trains (trainable
parameters equal an independent formula, the training loss falls, and the adapter reloaded through
``Tagger`` gives the trained model's logits) or is refused in one line before any data is read (the
data files of a refused cell do not exist, so a later refusal would be a file error instead).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import memorise_argv
from peftner.testing import support
from peftner.methods import METHODS
from peftner.recipe import main
from peftner.testing.tiny import SPECS, build_checkpoint

EPOCHS = 3
LABELS = ["B-LOC", "B-PER", "O"]


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("architectures")
    return {name: build_checkpoint(name, root / name) for name in SPECS}


def sizes(model_dir) -> dict:
    """d, L, F, heads, key/value heads and head size read from the saved config."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model_dir)
    d = getattr(c, "hidden_size", None) or getattr(c, "dim", None) or c.n_embd
    heads = getattr(c, "num_attention_heads", None) or getattr(c, "n_heads", None) or c.n_head
    kv = getattr(c, "num_key_value_heads", None) or heads
    head_dim = getattr(c, "head_dim", None) or d // heads
    layers = getattr(c, "num_hidden_layers", None) or getattr(c, "n_layers", None) or c.n_layer
    ff = getattr(c, "intermediate_size", None) or getattr(c, "hidden_dim", None) or getattr(c, "d_ff", None) \
        or c.n_inner
    return dict(d=d, L=layers, F=ff, kv=kv * head_dim, model_type=c.model_type)


def expected_trainable(arch: str, method: str, s: dict, total: int, C: int = len(LABELS)) -> int:
    """Trainable parameters from the architecture's shapes (docs/methods.md, docs/models.md)."""
    d, L, F, kv = s["d"], s["L"], s["F"], s["kv"]
    head = d * C + C
    if arch == "modernbert":  # its prediction head block (dense d x d, LayerNorm weight) trains too
        head = d * C + C + d * d + d
    r, n_prompt, n_prefix, m = 8, 20, 64, d // 32  # LoRA: the cells pass --r 8
    llama_like = arch in ("llama", "qwen2", "mistral", "gemma", "gemma3")
    fused = arch in ("modernbert", "gpt2")  # one d -> 3d query/key/value projection
    lora_per_layer = r * (d + 3 * d) if fused else r * (2 * d + d + kv) if llama_like else r * 2 * 2 * d
    # IA3's default (query-key-value-ffn): l_q, l_k, l_v on their outputs, l_ff on the feed-forward activation
    ia3_per_layer = 3 * d + F if fused else d + 2 * kv + F if llama_like else 3 * d + F
    prefix_width = kv if llama_like else d
    bias_per_layer = {"bert": 7 * d + F, "distilbert": 7 * d + F, "gpt2": 7 * d + F,
                      "deberta-v2": 9 * d + F, "qwen2": d + 2 * kv}
    bias_extra = {"bert": d, "distilbert": d, "gpt2": d, "deberta-v2": d, "qwen2": 0}  # embedding or final LayerNorm
    return {
        "full": total,
        "head": head,
        "bitfit": L * bias_per_layer.get(arch, 0) + bias_extra.get(arch, 0) + head,
        "lora": L * lora_per_layer + head,
        "int8_lora": L * lora_per_layer + head,
        "qlora": L * lora_per_layer + head,
        "ia3": L * ia3_per_layer + head,
        "prompt": n_prompt * d + head,
        "adapter": L * (2 * d * m + m + d) + head,  # Pfeiffer: one adapter per layer
        "ptuning_v2": 2 * L * n_prefix * prefix_width + head,
    }[method]


def _batch(tokenizer):
    from peftner.data import encode_sentences
    from peftner.data.collator import PaddingCollator

    words = [["Alice", "lives", "in", "Paris"], ["Bob", "Carol", "visited", "the", "city", "Rome"]]
    features = encode_sentences(words, None, tokenizer, {}, 64)
    batch = PaddingCollator(tokenizer.pad_token_id)(features)
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


CELLS = [pytest.param(a, m, id=f"{a}-{m}") for a, m in support.cells()]


@pytest.mark.parametrize("arch, method", CELLS)
def test_cell(arch, method, checkpoints, memorisable_files, tmp_path, capsys, monkeypatch):
    model_dir = checkpoints[arch]
    refusal = support.expected(arch, method)
    if refusal is not None:
        missing = {k: tmp_path / f"missing-{k}.conll" for k in ("train", "validation", "test")}
        with pytest.raises(SystemExit) as exit_info:
            main(method, memorise_argv(missing, model_dir, tmp_path / "out", "--epochs", 1))
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and refusal in err and SPECS[arch].model_type in err, err
        return

    captured = {}
    original = METHODS[method]

    def apply(model, config):
        captured["model"] = original.apply(model, config)
        return captured["model"]

    monkeypatch.setitem(METHODS, method, dataclasses.replace(original, apply=apply))
    # LoRA on each architecture's query/value layout (its default, all-linear, is checked below)
    layout = ["--target-modules", "query-value", "--r", 8] if "lora" in method else []
    metrics = main(method, memorise_argv(memorisable_files, model_dir, tmp_path / "out", "--epochs", EPOCHS,
                                         "--keep-checkpoints", 0, *layout))
    losses = [h["train_loss"] for h in metrics["history"]]
    assert losses[-1] < losses[0], losses
    assert metrics["trainable_params"] == expected_trainable(arch, method, sizes(model_dir), metrics["total_params"])

    from peftner.reuse import Tagger

    tagger = Tagger.from_pretrained(tmp_path / "out" / "adapter", device="cpu")
    batch = _batch(tagger.tokenizer)
    trained = captured["model"].eval()
    with torch.no_grad():
        expected_logits = trained(**batch).logits
        reloaded = tagger.model(**batch).logits
    torch.testing.assert_close(reloaded, expected_logits, atol=1e-5, rtol=1e-4)


LORA_ARCHS = [a for a in SPECS if support.expected(a, "lora") is None]


@pytest.mark.parametrize("arch", LORA_ARCHS)
def test_default_lora_adapts_every_backbone_linear_layer(arch, checkpoints):
    """LoRA's default targets (all-linear, the sweep's winner): every linear layer of the backbone on
    every architecture, the head trained in full and not adapted."""
    from transformers.pytorch_utils import Conv1D

    from peftner.methods import count_parameters
    from peftner.models.loading import load_token_classifier

    method = METHODS["lora"]
    config = method.config_cls()
    assert config.target_modules == ["all-linear"]
    model = load_token_classifier(str(checkpoints[arch]), {0: "O", 1: "B-PER", 2: "B-LOC"})
    prefix = model.base_model_prefix + "."
    linear = {n: m for n, m in model.named_modules()
              if isinstance(m, (torch.nn.Linear, Conv1D)) and n.startswith(prefix)}
    shape = {n: (m.weight.shape[::-1] if isinstance(m, Conv1D) else m.weight.shape) for n, m in linear.items()}
    head = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(prefix))
    expected = sum(config.r * (out_f + in_f) for out_f, in_f in shape.values()) + head
    model = method.apply(model, config)
    assert count_parameters(model)[0] == expected
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if ".lora_A." in n}
    assert {n.split("base_model.model.", 1)[-1] for n in adapted} == set(linear)


@pytest.mark.parametrize("method, argv, fragment", [
    ("lora", ["--target-modules", "query,value"], "lora: --target-modules query,value match no linear layer"),
    ("ia3", ["--target-modules", "key,value,output.dense"], "ia3: --target-modules key,value match no linear layer"),
])
def test_targets_of_another_architecture_are_refused_with_the_real_names(method, argv, fragment, checkpoints,
                                                                        tmp_path, capsys):
    """BERT's names on DeBERTa: LoRA would crash in PEFT, IA3 would silently scale only output.dense."""
    missing = {k: tmp_path / f"missing-{k}.conll" for k in ("train", "validation", "test")}
    with pytest.raises(SystemExit):
        main(method, memorise_argv(missing, checkpoints["deberta-v2"], tmp_path / "out", *argv))
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err and "deberta-v2" in err, err
    instead = "all-linear" if method == "lora" else "query-key-value-ffn"
    assert "query_proj" in err and "value_proj" in err and instead in err  # what to use instead


IA3_ARCHS = [a for a in SPECS if support.expected(a, "ia3") is None]


@pytest.mark.parametrize("arch", IA3_ARCHS)
def test_ia3_named_target_sets_resolve_on_every_architecture(arch, checkpoints):
    """IA3's default (the sweep's winner, query-key-value-ffn) is named by role, so it holds on every
    backbone: key-value-ffn is Liu et al.'s set (what unset means), the query set adds exactly the
    query projection (nothing where queries, keys and values are one fused projection), key-value
    drops the feed-forward module."""
    from peftner.methods.ia3 import ia3_modules
    from peftner.models.facts import facts_of
    from peftner.models.loading import load_token_classifier

    facts = facts_of(load_token_classifier(str(checkpoints[arch]), {0: "O", 1: "B-PER", 2: "B-LOC"}))
    paper = ia3_modules(facts, None, None, None)
    assert ia3_modules(facts, ["key-value-ffn"], None, None) == paper
    targets, feedforward, exclude = ia3_modules(facts, ["query-key-value-ffn"], None, None)
    query = [t for t in facts.layout.lora if t not in facts.layout.ia3]
    assert sorted(targets) == sorted(paper[0] + query) and (feedforward, exclude) == paper[1:]
    assert len(query) == (0 if arch in ("modernbert", "gpt2") else 1)
    targets, feedforward, _ = ia3_modules(facts, ["key-value"], None, None)
    assert feedforward == [] and sorted(targets) == sorted(set(paper[0]) - set(paper[1]))
    if arch == "bert":  # the explicit flags the committed sweep's trials used
        assert ia3_modules(facts, ["query-key-value-ffn"], None, None) == (
            ["query", "key", "value", "output.dense"], ["output.dense"], ["attention.output.dense"])


def test_ia3_named_target_sets_need_a_known_layout():
    """A model type with no layout and no PEFT mapping: a named set is a one-line refusal that lists the
    model's linear layers (and does not suggest all-linear, which IA3 lacks); explicit names still work."""
    from peftner.methods.ia3 import ia3_modules
    from peftner.models.facts import ModelFacts
    from peftner.errors import PeftnerError

    facts = ModelFacts(model_type="unknown-x", layout=None, head=["classifier"],
                       linear=["encoder.0.proj_a", "encoder.0.proj_b"])
    for named, what in (("query-key-value-ffn", "query-key-value-ffn modules"), ("key-value", "key-value modules"),
                        ("key-value-ffn", "target modules")):
        with pytest.raises(PeftnerError) as error:
            ia3_modules(facts, [named], None, None)
        assert str(error.value) == (f"ia3: no default {what} for model type 'unknown-x'; pass --target-modules; "
                                    "its linear layers are: proj_a, proj_b")
    assert ia3_modules(facts, ["proj_a"], None, None) == (["proj_a"], [], [])
