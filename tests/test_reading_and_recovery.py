"""Inputs that must be read correctly (not refused), and recovery from corrupted checkpoints and OS faults.

Complements the table of refused inputs in test_bad_inputs.py.
"""

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import memorisable_sentences, memorise_argv, subprocess_env, write_conll
from peftner.cli import main as cli_main
from peftner.config import parse_args
from peftner.data.readers import read_conll
from peftner.methods import get_method
from peftner.recipe import main
from peftner.training.checkpoint import complete_checkpoints

ROOT = Path(__file__).resolve().parent.parent
SCORES = ("test_f1", "test_precision", "test_recall", "test_accuracy", "per_type", "best_dev_f1", "best_epoch",
          "history")


def three(path):
    return {"train": path, "validation": path, "test": path}


def scores(metrics):
    return {k: metrics[k] for k in SCORES}


def test_cr_only_test_file_scores_like_lf(memorisable_files, tiny_model, tmp_path):
    lf = memorisable_files["train"]
    cr = tmp_path / "cr.conll"
    cr.write_bytes(lf.read_bytes().replace(b"\n", b"\r"))
    crlf = tmp_path / "crlf.conll"
    crlf.write_bytes(b"\xef\xbb\xbf" + lf.read_bytes().replace(b"\n", b"\r\n"))  # and a BOM
    assert [(s.tokens, s.tags, s.lines) for s in read_conll(cr)] == \
        [(s.tokens, s.tags, s.lines) for s in read_conll(lf)] == [(s.tokens, s.tags, s.lines) for s in read_conll(crlf)]
    runs = {name: main("lora", memorise_argv({"train": lf, "validation": lf, "test": test}, tiny_model,
                                             tmp_path / name, "--epochs", 2, "--learning-rate", "3e-2"))
            for name, test in (("lf", lf), ("cr", cr), ("crlf", crlf))}
    assert runs["lf"]["test_f1"] > 0.0  # a CR-only file read as one sentence would score 0
    assert scores(runs["cr"]) == scores(runs["lf"]) == scores(runs["crlf"])


def test_whitespace_character_tokens_are_trained_and_predicted(tiny_model, tmp_path):
    sentences = [(tokens[:1] + ["\u00a0"] + tokens[1:] + ["\u3000"], tags[:1] + ["O"] + tags[1:] + ["O"])
                 for tokens, tags in memorisable_sentences(16)]
    path = write_conll(tmp_path / "ws.conll", sentences)
    assert read_conll(path)[0].tokens[1] == "\u00a0" and read_conll(path)[0].tokens[-1] == "\u3000"
    metrics = main("lora", memorise_argv(three(path), tiny_model, tmp_path / "o", "--epochs", 1))
    assert metrics["train_sentences"] == 16
    words = tmp_path / "words.jsonl"
    words.write_text(json.dumps({"tokens": ["Alice", "\u00a0", "lives", "\u3000"]}) + "\n", encoding="utf-8")
    out = tmp_path / "pred.conll"
    assert cli_main(["predict", "--adapter", str(tmp_path / "o" / "adapter"), "--input", str(words),
                     "--output-format", "conll", "--output", str(out), "--device", "cpu"]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [line.split("\t")[0] for line in lines if line] == ["Alice", "\u00a0", "lives", "\u3000"]
    assert all(line.split("\t")[1] for line in lines if line)  # every word, whitespace ones too, has a tag


def test_yaml_booleans_are_typed(tmp_path):
    lora = get_method("lora")
    for text, expected in (('strict: "no"', False), ("strict: no", False), ("strict: 'yes'", True),
                           ("strict: true", True), ("strict: off", False)):
        path = tmp_path / "c.yaml"
        path.write_text(text + "\n", encoding="utf-8")
        assert parse_args(lora, ["--config", str(path)])[0].refuse_invalid_transitions is expected, text
    path.write_text("learning_rate: 5e-4\nmethod:\n  r: 4\n", encoding="utf-8")  # YAML 1.1 reads 5e-4 as text
    train, method_config = parse_args(lora, ["--config", str(path), "--r", "8"])
    assert train.learning_rate == 5e-4 and method_config.r == 8  # the flag overrides the file


def test_non_bio_tags_on_purpose_score_token_accuracy_and_say_so(tmp_path, tiny_model, capsys):
    sentences = [(tokens, ["0" if t == "O" else t for t in tags]) for tokens, tags in memorisable_sentences(8)]
    path = write_conll(tmp_path / "mixed.conll", sentences)
    with pytest.raises(SystemExit):
        main("lora", memorise_argv(three(path), tiny_model, tmp_path / "refused", "--epochs", 1))
    assert "is not a BIO/IOBES tag" in capsys.readouterr().err
    metrics = main("lora", memorise_argv(three(path), tiny_model, tmp_path / "o", "--epochs", 1, "--tag-scheme", "none"))
    assert metrics["metric"] == "token_accuracy" and metrics["scheme"] == "none"
    assert re.search(r"test token accuracy\s+[0-9.]+", capsys.readouterr().out)


def _corrupt(path: Path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, complete, one byte wrong
    path.write_bytes(bytes(data))


def test_resume_skips_a_corrupted_checkpoint_for_the_previous_intact_one(memorisable_files, tiny_model, tmp_path,
                                                                         caplog, capsys):
    argv = memorise_argv(memorisable_files, tiny_model, tmp_path / "run", "--epochs", 2, "--checkpoint-every", 1)
    first = main("lora", argv)
    found = complete_checkpoints(tmp_path / "run" / "checkpoints")
    assert [p.name for p in found] == ["step-00000005", "step-00000006"]
    assert json.loads((found[-1] / "checksums.json").read_text())["model.safetensors"]
    _corrupt(found[-1] / "optimizer.bin")
    with caplog.at_level("WARNING"):
        again = main("lora", argv + ["--resume"])
    assert f"resuming from {found[0]}" in capsys.readouterr().out
    assert any("optimizer.bin does not match its checksum" in r.getMessage() for r in caplog.records)
    assert scores(again) == scores(first)  # one step redone from the intact checkpoint: same result
    for checkpoint in complete_checkpoints(tmp_path / "run" / "checkpoints"):
        _corrupt(checkpoint / "model.safetensors")
    newest = complete_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    with pytest.raises(SystemExit) as exit_info:
        main("lora", argv + ["--resume"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"peftner: error: {newest}: damaged checkpoint (model.safetensors does not match its checksum (corrupted)) "
        "and no intact earlier one; drop --resume to start over")


def test_disk_full_while_checkpointing_names_the_last_good_one_and_resume_recovers(
        memorisable_files, tiny_model, tmp_path, monkeypatch, capsys):
    from peftner.training import checkpoint

    argv = memorise_argv(memorisable_files, tiny_model, tmp_path / "run", "--epochs", 2, "--checkpoint-every", 1)
    reference = main("lora", memorise_argv(memorisable_files, tiny_model, tmp_path / "ref", "--epochs", 2,
                                           "--checkpoint-every", 1))
    real, calls = checkpoint.write_checksums, [0]

    def fills_up(directory):
        calls[0] += 1
        if calls[0] == 4:
            raise OSError(errno.ENOSPC, "No space left on device", str(directory / "checksums.json"))
        real(directory)

    monkeypatch.setattr(checkpoint, "write_checksums", fills_up)
    with pytest.raises(SystemExit) as exit_info:
        main("lora", argv)
    assert exit_info.value.code == 2
    directory = tmp_path / "run" / "checkpoints"
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"peftner: error: training stopped: could not write checkpoint {directory / 'step-00000004'} (no space left "
        f"on device); the last good checkpoint is kept in {directory / 'step-00000003'}; free some space (or pass "
        "--keep-checkpoints 0) and resume with --resume")
    assert sorted(p.name for p in directory.iterdir()) == ["step-00000002", "step-00000003"]  # no partial .tmp-
    monkeypatch.setattr(checkpoint, "write_checksums", real)
    assert scores(main("lora", argv + ["--resume"])) == scores(reference)


def test_disk_full_while_saving_the_adapter_keeps_the_earlier_one(memorisable_files, tiny_model, tmp_path,
                                                                  monkeypatch, capsys):
    from peft import PeftModel

    argv = memorise_argv(memorisable_files, tiny_model, tmp_path / "run", "--epochs", 1)
    main("lora", argv)
    adapter = tmp_path / "run" / "adapter"
    before = (adapter / "adapter_model.safetensors").read_bytes()

    def full_disk(self, directory, **kwargs):
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "adapter_model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", str(Path(directory) / "adapter_model.safetensors"))

    monkeypatch.setattr(PeftModel, "save_pretrained", full_disk)
    with pytest.raises(SystemExit) as exit_info:
        main("lora", argv + ["--learning-rate", "1e-2"])
    assert exit_info.value.code == 2
    last = complete_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"peftner: error: {adapter / 'adapter_model.safetensors'}: no space left on device; the last good "
        f"checkpoint is {last} (free space, then rerun with --resume)")
    assert (adapter / "adapter_model.safetensors").read_bytes() == before  # the earlier adapter is back
    assert not (tmp_path / "run" / "adapter.previous").exists()


@pytest.fixture(scope="module")
def adapter(tmp_path_factory, memorisable_files, tiny_model):
    out = tmp_path_factory.mktemp("adapter")
    main("lora", memorise_argv(memorisable_files, tiny_model, out, "--epochs", 1, "--keep-checkpoints", 0))
    return out / "adapter"


def test_predict_output_is_whole_or_absent_and_strict_json(adapter, tmp_path, monkeypatch, capsys):
    from peftner.reuse import tagger

    texts = tmp_path / "in.txt"
    texts.write_text("Alice lives in Paris\rBob met Carol\r", encoding="utf-8")  # CR-only lines: two texts
    out = tmp_path / "out.jsonl"
    assert cli_main(["predict", "--adapter", str(adapter), "--input", str(texts), "--output", str(out)]) == 0
    good = out.read_text(encoding="utf-8")
    assert [json.loads(line)["text"] for line in good.splitlines()] == ["Alice lives in Paris", "Bob met Carol"]

    real = tagger.Tagger.predict

    def nan_scores(self, *args, **kwargs):
        with torch.no_grad():
            for name, parameter in self.model.named_parameters():
                if "classifier" in name:
                    parameter.fill_(float("nan"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(tagger.Tagger, "predict", nan_scores)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["predict", "--adapter", str(adapter), "--input", str(texts), "--output", str(out)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (f"peftner: error: {adapter}: the model produced NaN or infinite scores "
                                               "(non-finite weights, or an overflow in reduced precision)")
    assert out.read_text(encoding="utf-8") == good  # the earlier output is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl"]  # no temporary left


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads files without permission")
def test_unreadable_data_file_as_a_user_would_meet_it(tmp_path, tiny_model, capsys):
    """The table simulates EACCES (tests may run as root); here the operating system refuses."""
    locked = write_conll(tmp_path / "locked.conll", memorisable_sentences(4))
    locked.chmod(0)
    try:
        with pytest.raises(SystemExit) as exit_info:
            main("lora", memorise_argv(three(locked), tiny_model, tmp_path / "o", "--epochs", 1))
    finally:
        locked.chmod(0o644)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        f"peftner: error: {locked}: cannot be read (permission denied)"


def test_read_only_output_is_one_line_and_keeps_the_earlier_file(adapter, tmp_path, monkeypatch, capsys):
    import os

    texts = tmp_path / "in.txt"
    texts.write_text("Alice lives in Paris\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    out.write_text("earlier\n", encoding="utf-8")

    def read_only(src, dst):
        raise OSError(errno.EROFS, "Read-only file system", str(dst))

    monkeypatch.setattr(os, "replace", read_only)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["predict", "--adapter", str(adapter), "--input", str(texts), "--output", str(out)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == f"peftner: error: {out}: cannot write (read-only file system)"
    assert out.read_text(encoding="utf-8") == "earlier\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl"]


def test_entry_points_exit_2_with_one_line_and_no_traceback(tmp_path, adapter):
    """As a user runs them: a separate process each (in parallel), stderr holds one line."""
    latin1 = tmp_path / "c.yaml"
    latin1.write_bytes(b"strict: caf\xe9\n")
    cases = {
        "epochs": ([str(ROOT / "recipes" / "lora_ner.py"), "--epochs", "0"], "--epochs must be at least 1, got 0"),
        "yaml": ([str(ROOT / "recipes" / "lora_ner.py"), "--config", str(latin1)],
                 f"{latin1}:1: not valid UTF-8 (byte 11 of the file)"),
        "stdin": (["-m", "peftner.cli", "predict", "--adapter", str(adapter), "--input", "-"],
                  "<stdin>:1: not valid UTF-8 (byte 0 of the line)"),
        "model": ([str(ROOT / "recipes" / "lora_ner.py"), "--model", str(tmp_path / "missing")],
                  f"{tmp_path / 'missing'}: model directory not found"),
    }
    children = {name: subprocess.Popen([sys.executable, *argv], cwd=tmp_path, env=subprocess_env(),
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for name, (argv, _) in cases.items()}
    for name, child in children.items():
        out, err = child.communicate(b"\x89PNG\x00\xff binary" if name == "stdin" else b"", timeout=240)
        assert child.returncode == 2, (name, err)
        assert err.decode().strip() == f"peftner: error: {cases[name][1]}", (name, err)
        assert not out


def test_a_checkpoint_half_deleted_by_a_kill_is_cleaned_up(tmp_path, tiny_model, memorisable_files):
    """A kill while rotation deletes an old checkpoint leaves at most a ``.tmp-`` folder; a ``step-`` folder
    without its progress file (an older version's half-deleted checkpoint) is removed at the next save."""
    from peftner.recipe import main

    out = tmp_path / "run"
    half = out / "checkpoints" / "step-00000001"
    half.mkdir(parents=True)
    (half / "model.safetensors").write_bytes(b"partial")
    main("lora", memorise_argv(memorisable_files, tiny_model, out, "--epochs", 2, "--checkpoint-every", 2,
                               "--keep-checkpoints", 1, "--threads", 1, "--resume"))  # --resume: nothing is wiped first
    kept = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert len(kept) == 1 and kept[0].startswith("step-") and kept[0] != "step-00000001", kept
