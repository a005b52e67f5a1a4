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

pytestmark = pytest.mark.slow  # minutes of training: run first (conftest.py)

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


def test_a_matrix_run_stopped_after_a_checkpoint_continues_from_it(long_run, tiny_model, tmp_path, monkeypatch):
    """A compare or suite run whose worker was stopped continues from its last checkpoint when the matrix
    resumes (not from the first step), scoring as the uninterrupted run; a finished run's checkpoints go."""
    from peftner.experiments.matrix import RunSpec, run_one

    files, baseline = long_run
    monkeypatch.setenv("PYTHONPATH", subprocess_env()["PYTHONPATH"])  # the run subprocess uses this checkout
    run_dir = tmp_path / "runs" / "lora" / "size-all" / "seed-0"
    shutil.copytree(baseline["output_dir"], run_dir)
    (run_dir / "metrics.json").unlink()
    last, before = complete_checkpoints(run_dir / "checkpoints")[::-1][:2]
    shutil.rmtree(last)  # stopped between these two checkpoints
    recipe_args = ["--model", str(tiny_model), "--train-file", str(files["train"]), "--validation-file",
                   str(files["validation"]), "--test-file", str(files["test"]), "--batch-size", "8", *map(str, LONG_RUN)]
    run_one(RunSpec("lora", 0, None), run_dir, recipe_args, [sys.executable])
    assert f"resuming from {before}" in (run_dir / "log.txt").read_text()
    assert scores(json.loads((run_dir / "metrics.json").read_text())) == scores(baseline)
    assert not (run_dir / "checkpoints").exists()


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



# ------------------------------------------------------------------------ round three (issue 23)

# Runs one peftner command in a child process whose function ``MODULE:ATTRIBUTE`` sends the process
# a real signal when it is called: Ctrl-C (SIGINT) or SIGTERM arrives while the command is inside it.
SIGNAL_CHILD = """
import importlib, os, signal, sys, time
# A terminal delivers Ctrl-C; a job started in the background (CI, nohup) inherits SIGINT ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)
module, attribute, name = sys.argv[1].split(":") + [sys.argv[2]]
owner = importlib.import_module(module)
*path, last = attribute.split(".")
for part in path:
    owner = getattr(owner, part)
def interrupted(*args, **kwargs):
    os.kill(os.getpid(), getattr(signal, name))
    # Short sleeps: when another thread (torch, tqdm) takes the signal, the main thread's sleep is not
    # cut short, and Python runs the handler only between two steps of the main thread.
    for _ in range(300):
        time.sleep(0.1)
    raise AssertionError("the signal did not arrive")
setattr(owner, last, interrupted)
if sys.argv[3] == "recipe":  # recipes/lora_ner.py, as a user runs it
    import runpy
    sys.argv = [sys.argv[4], *sys.argv[5:]]
    runpy.run_path(sys.argv[0], run_name="__main__")
else:
    from peftner.cli import main
    sys.exit(main(sys.argv[3:]))
"""


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_model, memorisable_files):
    out = tmp_path_factory.mktemp("signals") / "run"
    main("lora", memorise_argv(memorisable_files, tiny_model, out, "--epochs", 1, "--keep-checkpoints", 0))
    return out


def test_ctrl_c_and_sigterm_end_every_command_in_one_line(trained_run, tiny_model, memorisable_files, tmp_path):
    """Every command (recipes, predict, export, tune, compare, push): a real SIGINT or SIGTERM while it
    works (a recipe: during its dev evaluation) ends it with exit status 130 and one line, no traceback."""
    (tmp_path / "in.txt").write_text("Alice lives in Paris\n")
    run = memorise_argv(memorisable_files, tiny_model, tmp_path / "train", "--epochs", 1)
    data = " ".join(run[:8])  # --model and the three data files
    adapter = str(trained_run / "adapter")
    cases = {
        "recipe script": ("peftner.training.loop:evaluate_split", "SIGINT",
                          ["recipe", str(ROOT / "recipes" / "lora_ner.py"), *run]),
        "train": ("peftner.training.loop:evaluate_split", "SIGTERM",
                  ["train", "lora", *run[:8], "--output-dir", str(tmp_path / "t2"), "--batch-size", "8"]),
        "predict": ("peftner.reuse.tagger:Tagger.predict", "SIGINT",
                    ["predict", "--adapter", adapter, "--input", str(tmp_path / "in.txt")]),
        "export": ("peftner.reuse.export:export_model", "SIGINT",
                   ["export", "--adapter", adapter, "--output", str(tmp_path / "merged"), "--merge"]),
        "tune": ("peftner.experiments.search:run_trial", "SIGINT",
                 ["tune", "lora", "--n-trials", "1", "--seeds", "0", "--budget-epochs", "1",
                  "--results-dir", str(tmp_path / "tuned"), "--extra", data]),
        "compare": ("peftner.experiments.matrix:run_one", "SIGTERM",
                    ["compare", "--methods", "lora", "--seeds", "1", "--epochs", "1", "--results-dir",
                     str(tmp_path / "cmp"), "--extra", data]),
        "push": ("peftner.reuse.hub:push", "SIGINT", ["push", "--adapter", adapter, "--repo-id", "me/x"]),
    }
    children = {name: subprocess.Popen([sys.executable, "-c", SIGNAL_CHILD, target, signal_name, *argv],
                                       cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
                for name, (target, signal_name, argv) in cases.items()}
    for name, child in children.items():
        _, stderr = child.communicate(timeout=300)
        signal_name = cases[name][1]
        assert child.returncode == 130, (name, stderr[-2000:])
        assert "Traceback" not in stderr and "AssertionError" not in stderr, (name, stderr[-2000:])
        last = stderr.strip().splitlines()[-1]
        expected = "peftner: interrupted (Ctrl-C)" if signal_name == "SIGINT" else "peftner: interrupted (signal SIGTERM)"
        assert last.startswith(expected), (name, last)
    assert not (tmp_path / "merged").exists() and not (tmp_path / "train" / "metrics.json").exists()
    # the tune worker handed its trial back: it waits in the study for the next worker
    from peftner.experiments.storage import open_storage, read_study

    trials = read_study(open_storage(str(tmp_path / "tuned" / "study.journal")), "tune-lora").trials
    assert [t.state.name for t in trials] == ["FAIL", "WAITING"] and trials[0].user_attrs["interrupted"]


def test_a_signal_swallowed_by_a_finaliser_still_stops_training(tmp_path, tiny_model, memorisable_files, monkeypatch,
                                                                 capsys):
    """A SIGTERM whose handler runs inside a ``__del__`` (filelock's, called by the garbage collector
    mid-step) raises there, where Python only prints it: the loop stops at its next check anyway
    (a tune worker once trained on 13 minutes past its SIGTERM)."""
    import os

    from peftner.training import loop

    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)  # put back afterwards
    previous = signal.getsignal(signal.SIGTERM)

    class Finaliser:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(10_000):  # the handler runs here, inside __del__
                pass

    steps, real_step = [], loop._optimizer_step

    def step(run, batch, where):
        steps.append(where)
        if len(steps) == 2:
            Finaliser()  # collected at once
        return real_step(run, batch, where)

    monkeypatch.setattr(loop, "_optimizer_step", step)
    try:
        with pytest.raises(SystemExit) as stop:
            main("lora", memorise_argv(memorisable_files, tiny_model, tmp_path / "run", "--epochs", 3))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stop.value.code == 130 and len(steps) == 2, steps
    assert not (tmp_path / "run" / "metrics.json").exists()
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("peftner: interrupted (signal SIGTERM)"), err


def test_tune_and_compare_subprocesses_exit_2_with_one_line(tmp_path, memorisable_files):
    """The real `peftner` entry point of tune and compare: bad input ends in one line, before any trial or run."""
    journal = tmp_path / "torn.journal"
    journal.write_bytes(b'{"op_code":0,"worker_id":"w","study_name":"x","directions":[2]}\nnot json\n'
                        b'{"op_code":0,"worker_id":"w","study_name":"y","directions":[2]}\n')
    cases = {
        "typo": (["tune", "lora", "--results-dir", "r1", "--extra", "--lerning-rate 0.1"],
                 "--extra (recipe flags of lora): unrecognized arguments: --lerning-rate 0.1"),
        "journal": (["tune", "lora", "--results-dir", "r2", "--storage", str(journal)],
                    f"{journal}:2: damaged journal record (not JSON); restore the journal from a copy, or move it "
                    "aside to start a new study"),
        "compare": (["compare", "--methods", "lora,full", "--results-dir", "r3", "--extra", "--lora-alpha 8"],
                    "--extra (recipe flags of full): unrecognized arguments: --lora-alpha 8"),
        "compare seed": (["compare", "--results-dir", "r4", "--extra", "--seed 3"],
                         "--extra sets --seed, which this command sets for every run itself; drop it from --extra"),
    }
    children = {name: subprocess.Popen([sys.executable, "-m", "peftner.cli", *argv], cwd=tmp_path,
                                       env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for name, (argv, _) in cases.items()}
    for name, child in children.items():
        _, stderr = child.communicate(timeout=240)
        assert child.returncode == 2 and "Traceback" not in stderr, (name, stderr[-2000:])
        assert stderr.strip().splitlines()[-1] == f"peftner: error: {cases[name][1]}", (name, stderr)
    assert not any((tmp_path / r).exists() for r in ("r1", "r3", "r4"))  # refused before any folder was made


def _bilou(tags: list[str]) -> list[str]:
    return ["U-" + t[2:] if t.startswith("B-") else t for t in tags]


@pytest.mark.parametrize("scheme_f1", [False, True])
def test_bilou_data_is_scored_as_bilou(tmp_path, tiny_model, scheme_f1):
    """BILOU tags are scored as the IOBES tags they are (never passed to seqeval raw), with and without
    --scheme-f1; the score is the one the run's own predictions give when scored as BILOU."""
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOBES

    from peftner.metrics import seqeval_tags
    from peftner.data.readers import read_conll

    path = write_conll(tmp_path / "bilou.conll", [(w, _bilou(t)) for w, t in memorisable_sentences(24)])
    metrics = main("lora", memorise_argv(three(path), tiny_model, tmp_path / "o", "--epochs", 2,
                                         "--learning-rate", "5e-2", *(["--scheme-f1"] if scheme_f1 else [])))
    assert metrics["scheme"] == "BILOU" and metrics["source_scheme"] == "BILOU"
    # token, gold, predicted: the reader's tag is the last column, the prediction
    predicted = [s.tags for s in read_conll(tmp_path / "o" / "test_predictions.conll")]
    gold = [s.tags for s in read_conll(path)]
    assert any(t.startswith("U-") for p in predicted for t in p)  # the model predicts BILOU tags
    expected = f1_score([seqeval_tags(g, "BILOU") for g in gold], [seqeval_tags(p, "BILOU") for p in predicted],
                        **({"mode": "strict", "scheme": IOBES} if scheme_f1 else {}))
    assert metrics["test_f1"] == pytest.approx(expected)


def test_adjacent_one_token_entities_count_as_two():
    from peftner.metrics import score

    gold = [["U-PER", "U-PER", "O", "B-LOC", "L-LOC"]]
    assert score(gold, gold, tag_scheme="BILOU")["per_type"]["PER"]["number"] == 2
    assert score(gold, gold, f1_scheme="BILOU")["f1"] == 1.0
    assert score([["U-PER", "O", "O", "B-LOC", "L-LOC"]], gold, tag_scheme="BILOU")["recall"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("tags,scheme,labels_scheme", [
    (["I-PER", "I-PER", "O", "I-LOC"], "IOB1", "IOB2"),
    (["B-PER", "I-PER", "O", "B-LOC"], "IOB2", "IOB2"),
    (["S-PER", "O", "B-LOC", "E-LOC"], "IOBES", "IOBES"),
    (["U-PER", "O", "B-LOC", "L-LOC"], "BILOU", "BILOU"),
])
def test_each_scheme_is_read_as_what_it_is_and_named(tags, scheme, labels_scheme, monkeypatch):
    import peftner.data.corpus as corpus_module
    from peftner.data.readers import Sentence

    def splits(dataset, files):
        return "files", {k: [Sentence(["a", "b", "c", "d"], list(tags)), Sentence(["e", "f", "g", "h"], list(tags))]
                         for k in ("train", "validation", "test")}

    monkeypatch.setattr(corpus_module, "_load_splits", splits)
    corpus = corpus_module.load_corpus("x")
    named = corpus_module.load_corpus("x", tag_scheme="IOBES" if scheme == "IOB2" else scheme)  # --tag-scheme wins
    assert (corpus.schema.source_scheme, corpus.schema.scheme) == (scheme, labels_scheme)
    assert named.schema.source_scheme == ("IOBES" if scheme == "IOB2" else scheme)


def test_rerun_without_resume_keeps_the_users_files_in_checkpoints(memorisable_files, tiny_model, tmp_path):
    out = tmp_path / "run"
    (out / "checkpoints" / "notes").mkdir(parents=True)
    (out / "checkpoints" / "notes" / "mine.txt").write_text("keep me")
    (out / "checkpoints" / "todo.txt").write_text("keep me too")
    for _ in range(2):
        main("lora", memorise_argv(memorisable_files, tiny_model, out, "--epochs", 1, "--checkpoint-every", 1))
    assert (out / "checkpoints" / "notes" / "mine.txt").read_text() == "keep me"
    assert (out / "checkpoints" / "todo.txt").read_text() == "keep me too"
    kept = complete_checkpoints(out / "checkpoints")
    assert [p.name for p in kept] == ["step-00000002", "step-00000003"]
    assert json.loads((kept[-1] / PROGRESS).read_text())["fingerprint"]["world_size"] == 1


def test_head_of_a_fine_tuned_classifier_is_kept_by_name_or_reinitialised(memorisable_files, tiny_model, tmp_path):
    """Starting from a token classifier for other labels (a public NER model): its label layer is
    re-initialised, reported in the summary and metrics.json; with the same labels in another order its
    rows follow the names."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from peftner.models.loading import load_token_classifier

    ner = tmp_path / "ner"
    labels = ["O", "B-PER", "B-LOC"]
    source = AutoModelForTokenClassification.from_pretrained(
        tiny_model, num_labels=3, id2label=dict(enumerate(labels)), label2id={k: i for i, k in enumerate(labels)})
    source.save_pretrained(ner)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(ner)
    mine = ["O", "B-LOC", "B-PER"]
    model, how = load_token_classifier(str(ner), dict(enumerate(mine)), with_head=True)
    assert how == "kept, rows reordered by label name"
    assert torch.equal(model.classifier.weight, source.classifier.weight[[0, 2, 1]])
    assert model.config.id2label == dict(enumerate(mine))

    other = write_conll(tmp_path / "other.conll", [(w, [t.replace("PER", "ORG") for t in g])
                                                   for w, g in memorisable_sentences(24)])
    metrics = main("lora", memorise_argv(three(other), ner, tmp_path / "o", "--epochs", 1))
    assert metrics["head"] == "re-initialised (the model's 3 labels O, B-PER, B-LOC are not this data's)"
    same = main("lora", memorise_argv(memorisable_files, ner, tmp_path / "same", "--epochs", 1))
    assert same["head"] == "kept, rows reordered by label name"


def test_adapter_trained_with_a_relative_model_path_loads_from_anywhere(memorisable_files, tiny_model, tmp_path,
                                                                        monkeypatch, capsys):
    from peftner.cli import main as cli

    workdir = tmp_path / "work"
    shutil.copytree(tiny_model, workdir / "models" / "tiny")
    monkeypatch.chdir(workdir)
    main("lora", memorise_argv(memorisable_files, "models/tiny", workdir / "run", "--epochs", 1))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (elsewhere / "in.txt").write_text("Alice lives in Paris\n")
    capsys.readouterr()
    assert cli(["predict", "--adapter", str(workdir / "run" / "adapter"), "--input", "in.txt"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] == ["Alice", "lives", "in", "Paris"]


def test_a_torn_journal_is_repaired_and_read(tmp_path, capsys):
    """A worker killed mid-write: --status still reads the study (warning), the next search moves the
    cut-off bytes aside (nothing lost) instead of appending behind them, and workers still running read on."""
    import optuna

    from peftner.experiments.storage import open_storage

    path = tmp_path / "s.journal"
    study = optuna.create_study(storage=open_storage(str(path)), study_name="x")
    study.optimize(lambda t: t.suggest_float("a", 0, 1), n_trials=2)
    torn = b'{"op_code":5,"worker_id":"dead","trial_id":'
    with open(path, "ab") as handle:
        handle.write(torn)
    assert len(optuna.load_study(storage=open_storage(str(path), repair=False), study_name="x").trials) == 2
    assert "its last record was cut off by a crash" in capsys.readouterr().err
    study.optimize(lambda t: t.suggest_float("a", 0, 1), n_trials=1)  # a worker still running appends behind it
    again = optuna.load_study(storage=open_storage(str(path)), study_name="x")
    again.optimize(lambda t: t.suggest_float("a", 0, 1), n_trials=1)
    assert len(optuna.load_study(storage=open_storage(str(path)), study_name="x").trials) == 4
    assert [p.read_bytes() for p in tmp_path.glob("s.journal.torn-*")] in ([], [torn])


def test_a_data_error_stops_the_search_and_a_rerun_runs_trials(tmp_path, tiny_model, memorisable_files, capsys):
    """A set-up that fails every trial stops the search at once with one line; failed trials are not
    counted, so the same command with the data fixed runs its trials."""
    from peftner.cli import main as cli

    bad = tmp_path / "bad.conll"
    bad.write_text(memorisable_files["train"].read_text().replace("B-LOC", "S-LOC", 1) + "x\tU-PER\n")
    argv = ["tune", "lora", "--n-trials", "1", "--seeds", "0", "--budget-epochs", "1", "--results-dir",
            str(tmp_path / "res"), "--extra"]
    data = f"--model {tiny_model} --train-file {{}} --validation-file {{}} --test-file {{}} --batch-size 8"
    with pytest.raises(SystemExit) as exit_info:
        cli([*argv, data.format(bad, bad, bad)])
    assert exit_info.value.code == 2
    assert "tune-lora: trial 0 failed (" in capsys.readouterr().err
    good = memorisable_files["train"]  # other recipe flags than the failed trial's: allowed, nothing was searched
    assert cli([*argv, data.format(good, good, good)]) == 0
    status = capsys.readouterr()
    assert "1/1 trials: 1 complete, 0 pruned, 0 running, 0 left; 1 failed (not counted)" in status.err + status.out


STORAGE_WORKER = """
import sys
from peftner.experiments.storage import load_study, open_storage
study = load_study(open_storage(sys.argv[1]), "x")
study.optimize(lambda t: t.suggest_float("a", 0, 1), n_trials=2)
"""


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_workers_starting_at_once_share_a_new_storage(tmp_path, kind):
    """Six workers opening one new storage at the same moment: all start (SQLite's table creation race
    is retried), and every trial lands in the study."""
    import optuna

    from peftner.experiments.storage import open_storage

    url = f"sqlite:///{tmp_path / 's.db'}" if kind == "sqlite" else str(tmp_path / "s.journal")
    workers = [subprocess.Popen([sys.executable, "-c", STORAGE_WORKER, url], env=subprocess_env(),
                                stderr=subprocess.PIPE, text=True) for _ in range(6)]
    for worker in workers:
        _, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 0, stderr[-2000:]
    assert len(optuna.load_study(storage=open_storage(url), study_name="x").trials) == 12
