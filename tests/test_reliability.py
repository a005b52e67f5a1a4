"""Reliability: exact resume after SIGKILL, deterministic reruns, one-line errors for bad input,
NaN stop, and safe loading (safetensors only, no remote code, weights_only unpickling)."""

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import memorisable_sentences, memorise_argv, subprocess_env, write_conll
from peftner.methods import get_method
from peftner.recipe import main
from peftner.training.checkpoint import PROGRESS, complete_checkpoints

ROOT = Path(__file__).resolve().parent.parent
SCORES = ("test_f1", "test_precision", "test_recall", "test_accuracy", "per_type", "best_dev_f1",
          "best_epoch", "history", "optimizer_steps", "train_tokens")
LONG_RUN = ("--epochs", 3, "--learning-rate", "5e-3", "--checkpoint-every", 5)  # 30 batches an epoch


def scores(metrics: dict) -> dict:
    return {key: metrics[key] for key in SCORES}


@pytest.fixture(scope="module")
def long_run(tmp_path_factory, tiny_model):
    """An uninterrupted 3-epoch run on 240 sentences: the reference scores."""
    directory = tmp_path_factory.mktemp("long")
    path = write_conll(directory / "train.conll", memorisable_sentences(240, seed=1))
    files = {"train": path, "validation": path, "test": path}
    return files, main("lora", memorise_argv(files, tiny_model, directory / "baseline", *LONG_RUN))


def _position(directory: Path) -> dict | None:
    try:
        found = complete_checkpoints(directory)
        return json.loads((found[-1] / PROGRESS).read_text())["position"] if found else None
    except (OSError, ValueError):  # rotated away or renamed while we looked
        return None


def test_resume_after_sigkill_reproduces_uninterrupted_scores(long_run, tiny_model, tmp_path, monkeypatch, capsys):
    files, baseline = long_run
    out = tmp_path / "killed"
    argv = memorise_argv(files, tiny_model, out, *LONG_RUN)
    with open(tmp_path / "stderr.txt", "wb") as stderr:
        child = subprocess.Popen([sys.executable, str(ROOT / "recipes" / "lora_ner.py"), *argv], cwd=ROOT,
                                 env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            deadline = time.monotonic() + 240
            while True:  # kill as soon as a mid-epoch checkpoint of epoch 2 exists
                position = _position(out / "checkpoints")
                if position and position["epoch"] >= 2 and position["batches_done"] >= 5:
                    break
                assert child.poll() is None, (tmp_path / "stderr.txt").read_text()[-2000:]
                assert time.monotonic() < deadline, "no mid-epoch checkpoint appeared"
                time.sleep(0.01)
            child.send_signal(signal.SIGKILL)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not (out / "metrics.json").exists()
    assert 0 < _position(out / "checkpoints")["batches_done"] < 30  # killed mid-epoch

    loads = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        loads.append(kwargs.get("weights_only", True))  # torch >= 2.6 defaults to True
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    resumed = main("lora", argv + ["--resume"])
    assert "resuming from" in capsys.readouterr().out
    assert scores(resumed) == scores(baseline)
    assert len(loads) >= 3 and all(flag is True for flag in loads)  # optimizer, scheduler, RNG states
    kept = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert len(kept) == 2 and all(name.startswith("step-") for name in kept)  # --keep-checkpoints 2, no .tmp-


def test_rerun_with_same_seed_reproduces_scores(long_run, tiny_model, tmp_path):
    files, baseline = long_run
    again = main("lora", memorise_argv(files, tiny_model, tmp_path / "again", *LONG_RUN))
    assert scores(again) == scores(baseline)
    other_seed = main("lora", memorise_argv(files, tiny_model, tmp_path / "seed1", *LONG_RUN, "--seed", 1))
    assert other_seed["history"] != baseline["history"]  # the comparison above can fail


def test_resume_refuses_other_settings_and_ignores_partial_checkpoints(memorisable_files, tiny_model, tmp_path, capsys):
    out = tmp_path / "run"
    first = main("lora", memorise_argv(memorisable_files, tiny_model, out, "--epochs", 2, "--checkpoint-every", 1))
    partial = out / "checkpoints" / ".tmp-step-00000099"
    partial.mkdir()
    (out / "checkpoints" / "step-00000098").mkdir()  # no progress.json: incomplete
    assert complete_checkpoints(out / "checkpoints")[-1].name == "step-00000006"
    again = main("lora", memorise_argv(memorisable_files, tiny_model, out, "--epochs", 2, "--resume"))
    assert scores(again) == scores(first)  # resumed after the last epoch: same best state, same test
    with pytest.raises(SystemExit) as exit_info:
        main("lora", memorise_argv(memorisable_files, tiny_model, out, "--epochs", 2, "--resume",
                                   "--learning-rate", "1e-2"))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(r"peftner: error: .*step-00000006: written with other settings "
                        r"\(settings\.learning_rate: [0-9.e-]+ -> 0\.01\); .*", err), err


def test_nan_loss_stops_and_keeps_last_good_checkpoint(memorisable_files, tiny_model, tmp_path, monkeypatch, capsys):
    lora = get_method("lora")
    original, calls = lora.apply, [0]

    def poisoned(model, config):  # the loss of the 7th training batch becomes NaN
        model = original(model, config)

        def hook(module, args, output):
            if module.training:
                calls[0] += 1
                if calls[0] >= 7:
                    output.loss = output.loss * float("nan")
            return output

        model.register_forward_hook(hook)
        return model

    monkeypatch.setattr(lora, "apply", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(SystemExit) as exit_info:  # 3 batches an epoch: steps 1-6 fine, NaN at epoch 3
        main("lora", memorise_argv(memorisable_files, tiny_model, out, "--epochs", 3, "--checkpoint-every", 2))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    good = out / "checkpoints" / "step-00000006"
    assert err[-1] == (f"peftner: error: training stopped: loss became nan at epoch 3, batch 1; the last good "
                       f"checkpoint is kept in {good}; lower --learning-rate (or use --mixed-precision no) and "
                       "train again")
    assert [p.name for p in complete_checkpoints(out / "checkpoints")] == ["step-00000004", "step-00000006"]
    assert not (out / "metrics.json").exists()


def test_non_finite_weights_are_never_checkpointed(memorisable_files, tiny_model, tmp_path, capsys):
    steps = [0]

    def poison_after_step_4(optimizer, args, kwargs):
        steps[0] += 1
        if steps[0] == 4:
            with torch.no_grad():
                optimizer.param_groups[0]["params"][0].fill_(float("inf"))

    from torch.optim.optimizer import register_optimizer_step_post_hook

    handle = register_optimizer_step_post_hook(poison_after_step_4)
    try:
        err = run_expecting_error(memorisable_files, tiny_model, tmp_path / "o", capsys, "--epochs", 2,
                                  "--checkpoint-every", 1)
    finally:
        handle.remove()
    assert re.fullmatch(r"peftner: error: training stopped: weights became non-finite \(\S+\) at optimizer step 4; "
                        r"the last good checkpoint is kept in \S+/step-00000003; .*", err), err
    assert complete_checkpoints(tmp_path / "o" / "checkpoints")[-1].name == "step-00000003"


# ---------------------------------------------------------------------------------------- bad input

def run_expecting_error(files, model, out, capsys, *extra) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main("lora", memorise_argv(files, model, out, "--epochs", 1, *extra))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err)
    return err[-1]


def three(path):
    return {"train": path, "validation": path, "test": path}


GOOD = [(["alice", "lives", "in", "paris"], ["B-PER", "O", "O", "B-LOC"]),
        (["bob", "met", "carol"], ["B-PER", "O", "B-PER"])]


@pytest.mark.parametrize("name,content,line,message", [
    ("empty.conll", b"\n  \n", None, "file is empty"),
    ("columns.conll", b"alice\tB-PER\nlives\tVBZ\tO\n", 2, "3 columns, but line 1 has 2 (inconsistent column count)"),
    ("latin1.conll", b"alice\tB-PER\nm\xfcnchen\tB-LOC\n", 2, "not valid UTF-8 (byte 1 of the line)"),
    ("empty.jsonl", b'{"tokens": ["alice"], "tags": ["B-PER"]}\n{"tokens": [], "tags": []}\n', 2,
     "empty sentence (no tokens)"),
    ("one-class.conll", b"alice\tO\nlives\tO\n", None,
     "the training data has a single tag ('O'); a tagger needs at least two"),
])
def test_bad_training_file_is_named_with_its_line(tmp_path, tiny_model, capsys, name, content, line, message):
    path = tmp_path / name
    path.write_bytes(content)
    where = f"{path}:{line}" if line else str(path)
    assert run_expecting_error(three(path), tiny_model, tmp_path / "o", capsys) == f"peftner: error: {where}: {message}"


def test_missing_file(tmp_path, tiny_model, capsys):
    missing = tmp_path / "nope.conll"
    assert run_expecting_error(three(missing), tiny_model, tmp_path / "o", capsys) == \
        f"peftner: error: {missing}: file not found"


def test_unseen_dev_tag_fails_unless_allowed(tmp_path, tiny_model, capsys):
    train = write_conll(tmp_path / "train.conll", GOOD * 4)
    dev = write_conll(tmp_path / "dev.conll", [(["alice", "visited", "rome"], ["B-PER", "O", "B-ORG"])])
    files = {"train": train, "validation": dev, "test": train}
    assert run_expecting_error(files, tiny_model, tmp_path / "o", capsys) == (
        f"peftner: error: {dev}:3: tag 'B-ORG' never occurs in the training data "
        "(pass --allow-unseen-tags to score it as 'O')")
    metrics = main("lora", memorise_argv(files, tiny_model, tmp_path / "ok", "--epochs", 1, "--allow-unseen-tags"))
    assert metrics["best_epoch"] == 1


def test_invalid_bio_is_repaired_with_a_warning_and_refused_with_strict(tmp_path, tiny_model, capsys, caplog):
    broken = write_conll(tmp_path / "broken.conll", GOOD * 4 + [(["in", "paris"], ["O", "I-LOC"])])
    line = 4 * 9 + 2  # 4 copies of (4 + 3 tokens, 2 blank lines), then line 2 of the last sentence
    assert run_expecting_error(three(broken), tiny_model, tmp_path / "o", capsys, "--refuse-invalid-transitions") == (
        f"peftner: error: {broken}:{line}: invalid transition: 'I-LOC' does not continue an entity "
        "(--refuse-invalid-transitions refuses; drop it to repair I- to B-)")
    with caplog.at_level("WARNING"):
        metrics = main("lora", memorise_argv(three(broken), tiny_model, tmp_path / "ok", "--epochs", 1))
    assert metrics["repaired_transitions"] == 3  # once in each of train, dev and test
    assert any("repaired 3 invalid BIO transitions" in r.getMessage() for r in caplog.records)


def test_sentence_of_over_1000_tokens_is_windowed_not_refused(tmp_path, tiny_model, capsys):
    words = (["alice", "lives", "in", "paris", "and", "bob", "visited", "rome"] * 150)
    tags = (["B-PER", "O", "O", "B-LOC", "O", "B-PER", "O", "B-LOC"] * 150)
    assert len(words) == 1200
    path = write_conll(tmp_path / "long.conll", GOOD * 4 + [(words, tags)])
    metrics = main("lora", memorise_argv(three(path), tiny_model, tmp_path / "o", "--epochs", 1))
    windows = int(re.search(r"(\d+) training windows", capsys.readouterr().out).group(1))
    assert windows > 9 + 1200 // 64  # the 64-position tiny model needs many windows for it
    assert metrics["test_f1"] >= 0.0 and metrics["train_sentences"] == 9


def test_unwritable_output_directory(memorisable_files, tiny_model, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    err = run_expecting_error(memorisable_files, tiny_model, blocker / "out", capsys)
    assert err.startswith(f"peftner: error: {blocker / 'out'}: output directory is not writable")


def test_model_directory_without_tokenizer(memorisable_files, tiny_model, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_model / name, bare / name)
    err = run_expecting_error(memorisable_files, bare, tmp_path / "o", capsys)
    assert err.startswith(f"peftner: error: {bare}: model directory has no tokenizer")


def test_pickle_only_model_directory_is_refused(memorisable_files, tiny_model, tmp_path, capsys):
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_model, pickled)
    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    err = run_expecting_error(memorisable_files, pickled, tmp_path / "o", capsys)
    assert err == (f"peftner: error: {pickled}: no .safetensors weights (found pytorch_model.bin); peftner "
                   "loads weights only from safetensors, never from pickle files (convert them with a trusted "
                   "tool first)")


def model_with_remote_code(tiny_model, directory: Path) -> tuple[Path, Path]:
    """A copy of the tiny model whose config points at model code that leaves a marker file."""
    remote, marker = directory / "remote", directory / "remote-code-ran"
    shutil.copytree(tiny_model, remote)
    config = json.loads((remote / "config.json").read_text())
    config["auto_map"] = {"AutoModelForTokenClassification": "evil.EvilModel"}
    (remote / "config.json").write_text(json.dumps(config))
    (remote / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n"
                                    "from transformers import BertForTokenClassification as EvilModel\n")
    return remote, marker


def test_remote_code_in_model_directory_is_not_run_without_the_flag(memorisable_files, tiny_model, tmp_path):
    remote, marker = model_with_remote_code(tiny_model, tmp_path)
    main("lora", memorise_argv(memorisable_files, remote, tmp_path / "o", "--epochs", 1))
    assert not marker.exists()  # (the subprocess test below shows that the flag does run it)


def test_code_paths_never_unpickle_untrusted_files():
    sources = {p: p.read_text() for p in (ROOT / "peftner").rglob("*.py")}
    for path, text in sources.items():
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, f"{path}: {call}"
        assert "pickle.load" not in text and "trust_remote_code=True" not in text, path
    assert "use_safetensors=True" in sources[ROOT / "peftner" / "models" / "loading.py"]
    assert "safe_serialization=True" in sources[ROOT / "peftner" / "training" / "checkpoint.py"]


def test_recipe_subprocess_exits_2_with_one_line_and_no_traceback(tmp_path, tiny_model, memorisable_files):
    """The real entry point, as a user runs it (in parallel to save start-up time). One more child
    runs with --trust-remote-code, which does import the model directory's code (in a subprocess,
    because that code registers itself in transformers for the rest of the process)."""
    remote, marker = model_with_remote_code(tiny_model, tmp_path)
    trusting = subprocess.Popen(
        [sys.executable, str(ROOT / "recipes" / "lora_ner.py"),
         *memorise_argv(memorisable_files, remote, tmp_path / "trusting", "--epochs", 1, "--trust-remote-code")],
        cwd=ROOT, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    latin1 = tmp_path / "latin1.conll"
    latin1.write_bytes(b"alice\tB-PER\n\nm\xfcnchen\tB-LOC\n")
    broken = write_conll(tmp_path / "broken.conll", GOOD + [(["in", "paris"], ["O", "I-LOC"])])
    cases = {
        "missing": (three(tmp_path / "missing.conll"), [], f"{tmp_path / 'missing.conll'}: file not found"),
        "utf8": (three(latin1), [], f"{latin1}:3: not valid UTF-8 (byte 1 of the line)"),
        "strict": (three(broken), ["--strict"], f"{broken}:11: invalid transition: 'I-LOC' does not continue "
                                                "an entity (--refuse-invalid-transitions refuses; drop it to repair I- to B-)"),
    }
    children = {}
    for name, (files, extra, _) in cases.items():
        argv = memorise_argv(files, tiny_model, tmp_path / name, "--epochs", 1, *extra)
        children[name] = subprocess.Popen([sys.executable, str(ROOT / "recipes" / "lora_ner.py"), *argv],
                                          cwd=ROOT, env=subprocess_env(), stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True)
    for name, child in children.items():
        _, stderr = child.communicate(timeout=240)
        assert child.returncode == 2, (name, stderr)
        assert "Traceback" not in stderr, stderr
        assert stderr.strip().splitlines()[-1] == f"peftner: error: {cases[name][2]}"
    _, stderr = trusting.communicate(timeout=240)
    assert trusting.returncode == 0, stderr[-2000:]
    assert marker.exists()
