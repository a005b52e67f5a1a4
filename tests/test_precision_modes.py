"""``precision="bf16-checked"``: a bfloat16 pass whose close calls are re-run exactly gives the exact mode's
tags; bad precision settings are one-line errors. Tiny token classifiers built in code, with heads made to
have close calls (or none)."""

import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FILLER, PEOPLE, PLACES
from peftner.errors import PeftnerError
from peftner.reuse import Tagger
from peftner.reuse.tagger import AGGREGATIONS
from peftner.testing.tiny import SPECS, build_checkpoint

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
VOCAB = PEOPLE + PLACES + FILLER + ["unknowns", "parising"]  # the last two split into several subwords


def _classifier(directory, tiny_model, edit_head):
    """A plain token-classification directory (what `peftner export --merge` writes) with a seeded head."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(
        tiny_model, id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)})
    with torch.no_grad():
        edit_head(model.classifier)
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(directory)
    return directory


def _tie(head):
    """B-PER and I-PER a hair apart (1e-3) and far above the rest: float32 picks I-PER, while bfloat16, whose
    spacing near 8 is 0.03, cannot tell the two apart and picks the first, B-PER: every word a close call."""
    head.weight[2] = head.weight[1]
    head.bias[1], head.bias[2] = 8.0, 8.0 + 1e-3


def _confident(head):
    """Each word's best label 20 logits above the rest: no close calls."""
    head.weight.mul_(0.01)
    head.bias.copy_(torch.tensor([20.0, 0.0, 0.0, 0.0, 0.0]))


def _random(head):
    """The seeded random head, scaled: some words are close calls, most are not."""
    head.weight.mul_(30)


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("precision")
    return {name: _classifier(root / name, tiny_model, edit) for name, edit in
            (("tie", _tie), ("confident", _confident), ("random", _random))}


def _sentences(n: int, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    return [[rng.choice(VOCAB) for _ in range(rng.randint(1, 12))] for _ in range(n)]


def _tags(tagger, words, aggregation):
    return [p.tags for p in tagger.predict(words, aggregation=aggregation)]


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_close_calls_are_rechecked_to_the_exact_tags(models, aggregation):
    words = _sentences(20)
    exact = _tags(Tagger.from_pretrained(models["tie"], device="cpu"), words, aggregation)
    assert {t for s in exact for t in s} == {"I-PER"}
    unchecked = Tagger.from_pretrained(models["tie"], device="cpu", precision="bf16-checked", check_margin=0)
    assert {t for s in _tags(unchecked, words, aggregation) for t in s} == {"B-PER"}  # bfloat16 alone is wrong
    assert unchecked.last_check.rechecked_inputs == 0
    checked = Tagger.from_pretrained(models["tie"], device="cpu", precision="bf16-checked")
    assert _tags(checked, words, aggregation) == exact
    report = checked.last_check
    n_words = sum(map(len, words))
    assert (report.rechecked_inputs, report.rechecked_fraction) == (len(words), 1.0)
    assert report.close_words == report.changed_words == report.words == n_words
    error = checked.bf16_error(words, aggregation=aggregation)
    assert error["differing_tags"] == n_words and 5e-4 < error["largest_margin_error"] < checked.check_margin


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_confident_words_skip_the_recheck(models, aggregation):
    words = _sentences(20)
    checked = Tagger.from_pretrained(models["confident"], device="cpu", precision="bf16-checked")
    assert _tags(checked, words, aggregation) == _tags(Tagger.from_pretrained(models["confident"], device="cpu"),
                                                       words, aggregation)
    assert (checked.last_check.rechecked_inputs, checked.last_check.close_words) == (0, 0)


@pytest.fixture(scope="module")
def random_pair(models):
    return (Tagger.from_pretrained(models["random"], device="cpu"),
            Tagger.from_pretrained(models["random"], device="cpu", precision="bf16-checked"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.lists(st.sampled_from(VOCAB), min_size=1, max_size=14), min_size=1, max_size=6),
       aggregation=st.sampled_from(AGGREGATIONS), batch_size=st.integers(1, 4))
def test_checked_tags_equal_exact_tags(random_pair, words, aggregation, batch_size):
    exact, checked = random_pair
    assert [p.tags for p in checked.predict(words, batch_size=batch_size, aggregation=aggregation)] == \
           [p.tags for p in exact.predict(words, batch_size=batch_size, aggregation=aggregation)]
    assert checked.last_check.rechecked_inputs <= len(words)


def test_random_head_has_both_kinds_of_words(random_pair):
    """The property test above exercises re-checked and trusted words alike."""
    _, checked = random_pair
    checked.predict(_sentences(40))
    assert 0 < checked.last_check.rechecked_inputs < 40


@pytest.mark.parametrize("kwargs, message", [
    ({"precision": "bf17"}, "--precision must be exact or bf16-checked, got 'bf17'"),
    ({"precision": "bf16-checked", "check_margin": -0.1}, "--check-margin must be a number >= 0, got -0.1"),
    ({"precision": "bf16-checked", "check_margin": float("nan")}, "--check-margin must be a number >= 0, got nan"),
])
def test_bad_precision_settings_are_one_line(models, kwargs, message):
    with pytest.raises(PeftnerError) as error:
        Tagger.from_pretrained(models["confident"], device="cpu", **kwargs)
    assert str(error.value) == message


def test_checked_mode_refuses_a_quantized_backbone():
    from types import SimpleNamespace

    from peftner.reuse.precision import check_precision

    with pytest.raises(PeftnerError, match="needs a full-precision backbone.*--full-precision"):
        check_precision("bf16-checked", 0.25, SimpleNamespace(is_quantized=True))
    check_precision("exact", 0.25, SimpleNamespace(is_quantized=True))


# ------------------------------------------------------------------ compile=True (torch.compile of the bf16 pass)
@pytest.fixture(scope="module")
def compiled_random(models):
    return Tagger.from_pretrained(models["random"], device="cpu", precision="bf16-checked", compile=True)


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_compiled_checked_tags_equal_exact_tags(models, random_pair, compiled_random, aggregation):
    exact, _ = random_pair
    assert compiled_random.compiled and compiled_random.compile_seconds > 0 and compiled_random.compile_error is None
    words = _sentences(40, seed=1) + [["Paris"]]  # a one-row last batch too
    for batch_size in (1, 7, 32):
        assert [p.tags for p in compiled_random.predict(words, batch_size=batch_size, aggregation=aggregation)] == \
               [p.tags for p in exact.predict(words, batch_size=batch_size, aggregation=aggregation)]
    assert 0 < compiled_random.last_check.rechecked_inputs < len(words)


def test_compile_falls_back_to_eager_where_inductor_fails(models, monkeypatch):
    def broken(model, **kwargs):
        def forward(**inputs):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore lines")
        return forward

    monkeypatch.setattr(torch, "compile", broken)
    words = _sentences(12)
    with pytest.warns(RuntimeWarning, match="torch.compile is unavailable here .*InvalidCxxCompiler.*uncompiled"):
        checked = Tagger.from_pretrained(models["random"], device="cpu", precision="bf16-checked", compile=True)
    assert (checked.compiled, checked.compile_seconds) == (False, None)
    assert checked.compile_error == "RuntimeError: InvalidCxxCompiler: No working C++ compiler found"
    assert _tags(checked, words, "first") == _tags(Tagger.from_pretrained(models["random"], device="cpu"), words,
                                                   "first")


@pytest.mark.parametrize("kwargs, message", [
    ({"compile": True}, "--compile compiles the bfloat16 pass of --precision bf16-checked; the exact mode runs "
                        "uncompiled so that its tags stay the ones the run scored"),
    ({"precision": "bf16-checked", "compile": "yes"}, "--compile must be True or False, got 'yes'"),
])
def test_bad_compile_settings_are_one_line(models, kwargs, message):
    with pytest.raises(PeftnerError) as error:
        Tagger.from_pretrained(models["confident"], device="cpu", **kwargs)
    assert str(error.value) == message


def test_calibrated_margin_is_the_safety_factor_times_the_error(random_pair):
    exact, checked = random_pair
    dev, test = _sentences(30, seed=2), _sentences(30, seed=3)
    margin = checked.check_margin
    try:
        report = checked.calibrate_check_margin(dev, safety_factor=2)
        assert report["check_margin"] == checked.check_margin == 2 * report["largest_margin_error"] > 0
        assert _tags(checked, test, "first") == _tags(exact, test, "first")
    finally:
        checked.check_margin = margin
    with pytest.raises(PeftnerError, match="--safety-factor must be a number >= 1, got 0.5"):
        checked.calibrate_check_margin(dev, safety_factor=0.5)
    with pytest.raises(PeftnerError, match="--precision must be bf16-checked to calibrate"):
        exact.calibrate_check_margin(dev)


# ------------------------------------------------------------------ every architecture of peftner.testing.tiny
# (name, architecture, bidirectional): each decoder as a normal run exports it (causal attention, padding on
# the right), and Llama also as a --bidirectional run exports it ("is_causal": false in config.json).
ARCHITECTURES = [pytest.param(name, name, False, id=name) for name in SPECS] + [
    pytest.param("llama-bidirectional", "llama", True, id="llama-bidirectional")]
ARCHITECTURE_WORDS = _sentences(12, seed=4) + [["paris"]]  # a one-word input: one token on the decoders


def _architecture_classifier(directory, source, bidirectional: bool):
    """``source`` (a tiny random checkpoint) as `peftner export --merge` writes a model trained on it: a plain
    token-classification directory and the tokenizer as peftner loaded it (its padding token). The head is
    seeded random with weights of standard deviation 0.6 (BERT's 0.02 scaled as `_random` does) on every
    architecture: T5 and ModernBERT initialise theirs far wider, and a model whose bfloat16 error exceeds the
    default check margin needs Tagger.calibrate_check_margin instead."""
    from peftner.models.decoders import make_bidirectional
    from peftner.models.loading import load_token_classifier, load_tokenizer

    model = load_token_classifier(str(source), dict(enumerate(LABELS)))
    if bidirectional:
        assert make_bidirectional(model) > 0
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == len(LABELS)]
    assert len(head) == 1
    torch.manual_seed(0)
    with torch.no_grad():
        head[0].weight.normal_(0, 0.6)
    model.save_pretrained(directory)
    load_tokenizer(str(source)).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def architecture_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("precision-architectures")
    sources = {arch: build_checkpoint(arch, root / f"{arch}-source") for arch in SPECS}
    return {name: _architecture_classifier(root / name, sources[arch], bidirectional)
            for name, arch, bidirectional in (p.values for p in ARCHITECTURES)}


def _assert_checked_equals_exact(exact, checked, aggregation, batch_size):
    words = ARCHITECTURE_WORDS
    tags = [p.tags for p in checked.predict(words, batch_size=batch_size, aggregation=aggregation)]
    report = checked.last_check
    assert tags == [p.tags for p in exact.predict(words, batch_size=batch_size, aggregation=aggregation)], \
        checked.bf16_error(words, batch_size=batch_size, aggregation=aggregation)
    assert 0 < report.close_words < report.words and 0 < report.rechecked_inputs < report.inputs, report


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
@pytest.mark.parametrize("name, arch, bidirectional", ARCHITECTURES)
def test_checked_tags_equal_exact_tags_on_every_architecture(architecture_models, name, arch, bidirectional,
                                                             aggregation):
    from peftner.models.facts import decoder_attention_modules

    exact = Tagger.from_pretrained(architecture_models[name], device="cpu")
    checked = Tagger.from_pretrained(architecture_models[name], device="cpu", precision="bf16-checked")
    if SPECS[arch].decoder:  # the bfloat16 copy attends as the reloaded model does
        assert exact.tokenizer.padding_side == "right"
        causal = not bidirectional
        assert bool(decoder_attention_modules(exact.model)) == bool(decoder_attention_modules(checked._fast)) == causal
    _assert_checked_equals_exact(exact, checked, aggregation, batch_size=4)


@pytest.mark.parametrize("name", ["llama", "modernbert"])
def test_compiled_checked_tags_equal_exact_tags_on_other_architectures(architecture_models, name):
    """A decoder and a non-BERT encoder through inductor; batches of one row and of one token (the one-word
    input on the decoder) reuse the warm-up's compilation."""
    exact = Tagger.from_pretrained(architecture_models[name], device="cpu")
    compiled = Tagger.from_pretrained(architecture_models[name], device="cpu", precision="bf16-checked", compile=True)
    assert compiled.compiled and compiled.compile_seconds > 0 and compiled.compile_error is None
    with torch._dynamo.config.patch(error_on_recompile=True):
        for batch_size in (1, 4):
            for aggregation in AGGREGATIONS:
                _assert_checked_equals_exact(exact, compiled, aggregation, batch_size)
