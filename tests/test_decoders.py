"""Decoder LLMs as token classifiers: bidirectional attention, padding token, prefix space, head name."""

from __future__ import annotations

import pytest
import torch

from conftest import memorise_argv
from peftner.recipe import main
from peftner.testing.tiny import build_checkpoint

DECODERS = ("gpt2", "llama", "qwen2", "mistral", "gemma", "gemma3")


@pytest.fixture(scope="module")
def decoders(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("decoders")
    return {name: build_checkpoint(name, root / name) for name in (*DECODERS, "bert")}


def _logits(model, ids, mask=None):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits


@pytest.mark.parametrize("name", DECODERS)
@pytest.mark.parametrize("with_mask", [False, True], ids=["no-mask", "padding-mask"])
def test_bidirectional_lets_later_tokens_change_earlier_positions(name, with_mask, decoders):
    from peftner.models.decoders import make_bidirectional
    from peftner.models.loading import load_token_classifier

    model = load_token_classifier(str(decoders[name]), {0: "O", 1: "B-PER"}).eval()
    first = torch.tensor([[10, 11, 12, 13, 14]])
    second = torch.tensor([[10, 11, 12, 13, 40]])  # only the last token differs
    mask = torch.tensor([[1, 1, 1, 1, 1]]) if with_mask else None

    causal_a, causal_b = _logits(model, first, mask), _logits(model, second, mask)
    torch.testing.assert_close(causal_a[:, :4], causal_b[:, :4])  # earlier positions cannot see it
    assert not torch.allclose(causal_a[:, 4], causal_b[:, 4])

    assert make_bidirectional(model) == 2  # the attention module of each of the 2 layers
    bi_a, bi_b = _logits(model, first, mask), _logits(model, second, mask)
    assert not torch.allclose(bi_a[:, 0], bi_b[:, 0], atol=1e-6)  # now position 0 sees the last token
    assert make_bidirectional(model) == 0  # idempotent: nothing causal is left


def test_bidirectional_padding_is_still_masked(decoders):
    """With full attention, padding on the right must not leak into real positions."""
    from peftner.models.decoders import make_bidirectional
    from peftner.models.loading import load_token_classifier

    model = load_token_classifier(str(decoders["llama"]), {0: "O", 1: "B-PER"}).eval()
    make_bidirectional(model)
    short = _logits(model, torch.tensor([[10, 11, 12]]), torch.tensor([[1, 1, 1]]))
    padded = _logits(model, torch.tensor([[10, 11, 12, 0, 0]]), torch.tensor([[1, 1, 1, 0, 0]]))
    torch.testing.assert_close(padded[:, :3], short, atol=1e-5, rtol=1e-4)


def test_bidirectional_run_reloads_bidirectional(decoders, memorisable_files, tmp_path):
    from peftner.reuse import Tagger

    metrics = main("lora", memorise_argv(memorisable_files, decoders["llama"], tmp_path / "out", "--epochs", 1,
                                         "--bidirectional", "--keep-checkpoints", 0))
    assert metrics["config"]["bidirectional"] is True
    tagger = Tagger.from_pretrained(tmp_path / "out" / "adapter", device="cpu")
    attention = [m for m in tagger.model.modules() if hasattr(m, "is_causal") and hasattr(m, "q_proj")]
    assert attention and not any(m.is_causal for m in attention)


def test_bidirectional_on_an_encoder_is_refused(decoders, memorisable_files, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main("lora", memorise_argv(memorisable_files, decoders["bert"], tmp_path / "out", "--bidirectional"))
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--bidirectional" in err and "bert" in err, err


@pytest.mark.parametrize("name", DECODERS)
def test_decoder_tokenizer_pads_and_spaces_words(name, decoders):
    from peftner.models.loading import load_tokenizer

    tokenizer = load_tokenizer(str(decoders[name]))
    assert tokenizer.pad_token_id is not None and tokenizer.padding_side == "right"
    words = tokenizer(["Alice", "lives"], is_split_into_words=True, add_special_tokens=False).input_ids
    text = tokenizer(" Alice lives", add_special_tokens=False).input_ids
    assert words == text  # each word encoded as it appears inside a sentence, after a space


@pytest.mark.parametrize("name", ["gpt2", "llama", "gemma3"])
@pytest.mark.parametrize("with_mask", [False, True], ids=["no-mask", "padding-mask"])
def test_bidirectional_from_a_layer_keeps_the_layers_below_causal(name, with_mask, decoders):
    """--bidirectional-from 1 on 2 layers: layer 0's output at position 0 still ignores a later token,
    the final output there sees it; right padding stays masked."""
    from peftner.models.decoders import make_bidirectional
    from peftner.models.loading import load_token_classifier

    model = load_token_classifier(str(decoders[name]), {0: "O", 1: "B-PER"}).eval()
    first = torch.tensor([[10, 11, 12, 13, 14]])
    second = torch.tensor([[10, 11, 12, 13, 40]])
    mask = torch.tensor([[1, 1, 1, 1, 1]]) if with_mask else None
    assert make_bidirectional(model, 1) == 1  # the attention of layer 1 of 2
    with torch.no_grad():
        a = model(input_ids=first, attention_mask=mask, output_hidden_states=True)
        b = model(input_ids=second, attention_mask=mask, output_hidden_states=True)
    torch.testing.assert_close(a.hidden_states[1][:, :4], b.hidden_states[1][:, :4])  # layer 0: causal
    assert not torch.allclose(a.logits[:, 0], b.logits[:, 0], atol=1e-6)  # layer 1 lets position 0 see it
    short = _logits(model, torch.tensor([[10, 11, 12]]), torch.tensor([[1, 1, 1]]))
    padded = _logits(model, torch.tensor([[10, 11, 12, 0, 0]]), torch.tensor([[1, 1, 1, 0, 0]]))
    torch.testing.assert_close(padded[:, :3], short, atol=1e-5, rtol=1e-4)


def test_bidirectional_from_run_reloads_it(decoders, memorisable_files, tmp_path):
    import json

    from peftner.reuse import Tagger

    main("lora", memorise_argv(memorisable_files, decoders["llama"], tmp_path / "out", "--epochs", 1,
                               "--bidirectional-from", 1, "--keep-checkpoints", 0))
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["config"]["bidirectional_from"] == 1 and metrics["config"]["bidirectional"] is False
    saved = json.loads((tmp_path / "out" / "adapter" / "config.json").read_text())
    assert saved["peftner_bidirectional_from"] == 1 and saved.get("is_causal", True) is True
    tagger = Tagger.from_pretrained(tmp_path / "out" / "adapter", device="cpu")
    attention = [m for m in tagger.model.modules() if hasattr(m, "is_causal") and hasattr(m, "q_proj")]
    assert [m.is_causal for m in attention] == [True, False]
    first, second = torch.tensor([[10, 11, 12, 13, 14]]), torch.tensor([[10, 11, 12, 13, 40]])
    assert not torch.allclose(_logits(tagger.model, first)[:, 0], _logits(tagger.model, second)[:, 0], atol=1e-6)


@pytest.mark.parametrize("model, argv, fragment", [
    ("bert", ["--bidirectional-from", 1], "--bidirectional-from: this bert model has no causal attention"),
    ("llama", ["--bidirectional-from", 2], "--bidirectional-from must be below the model's 2 layers"),
    ("llama", ["--bidirectional-from", 1, "--bidirectional"], "pass one of them"),
    ("llama", ["--bidirectional-from", 0], "--bidirectional-from must be at least 1"),
])
def test_bidirectional_from_refusals(model, argv, fragment, decoders, memorisable_files, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main("lora", memorise_argv(memorisable_files, decoders[model], tmp_path / "out", *argv))
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err, err
