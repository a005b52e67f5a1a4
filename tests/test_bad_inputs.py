"""The table of bad inputs: each case asserts exit status 2 and the exact one-line message.

Cases run in-process through the recipe ``main()`` / ``peftner`` ``main()`` with argv. Unless a case
says otherwise, loading a model is made to fail the test, so the error provably comes before any
model loads. docs/reliability.md shows this table (``python benchmarks/update_docs.py`` or ``python
tests/test_bad_inputs.py`` rewrites it; ``test_reliability_doc_lists_every_case`` fails when it is stale).
"""

from __future__ import annotations

import errno
import json
import pathlib
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import memorisable_sentences, write_conll  # noqa: E402
from peftner.markdown import markdown_table  # noqa: E402
from peftner.methods import METHODS  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "reliability.md"
BEFORE: dict = {}  # the case directory's files before the case ran (see snapshot)
BEGIN, END = "<!-- bad-input-table:begin -->", "<!-- bad-input-table:end -->"
GOOD_CONLL = "alice\tB-PER\nlives\tO\nin\tO\nparis\tB-LOC\n\nbob\tB-PER\nmet\tO\ncarol\tB-PER\n"


def _jsonl(*records) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def data(name: str) -> list[str]:
    """Flags that make ``name`` (in the case directory) the train, dev and test file."""
    return [arg for split in ("train", "validation", "test") for arg in (f"--{split}-file", f"{{d}}/{name}")]


@dataclass
class Case:
    id: str
    what: str  # the input, as docs/reliability.md lists it
    argv: list[str]  # train: appended to a good run's flags; predict/export: the whole command
    message: str  # after "peftner: error: "; {d} is the case directory
    command: str = "train"
    files: dict = field(default_factory=dict)  # name -> bytes, written into {d}
    setup: object = None  # callable(d: Path, monkeypatch, fixtures) for what files cannot express
    model_loads: bool = False  # the error needs the model (e.g. a check against its weights)
    method: str = "lora"  # the recipe a train case runs


def _deny(name):
    """Reading ``name`` fails with EACCES (a chmod 000 file cannot be used: tests may run as root)."""
    def setup(d, monkeypatch, fx):
        real = pathlib.Path.read_bytes

        def read_bytes(self):
            if self.name == name:
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real(self)
        monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    return setup


def _adapter_copy(edit):
    """A copy of the trained adapter at {d}/adapter, changed by ``edit(directory)``."""
    def setup(d, monkeypatch, fx):
        shutil.copytree(fx["adapter"], d / "adapter")
        edit(d / "adapter")
    return setup


def _edit_weights(change):
    def edit(directory):
        from safetensors.torch import load_file, save_file

        path = directory / "adapter_model.safetensors"
        state = load_file(path)
        change(state)
        save_file(state, path)
    return edit


def _poison(state):
    key = sorted(state)[0]
    state[key][0] = float("nan")


def _drop_head(state):
    del state[sorted(k for k in state if "classifier" in k)[0]]


def _wrong_shape(state):
    import torch

    key = sorted(k for k in state if "classifier" in k and k.endswith("weight"))[0]
    state[key] = torch.zeros(state[key].shape[0] + 2, state[key].shape[1])


def _full_without_head(d, monkeypatch, fx):
    from safetensors.torch import load_file, save_file

    shutil.copytree(fx["full"], d / "model")
    state = load_file(d / "model" / "model.safetensors")
    del state["classifier.weight"]
    save_file(state, d / "model" / "model.safetensors", metadata={"format": "pt"})


def _truncate(directory):
    path = directory / "adapter_model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])


def _edit_json(name: str, change):
    """An edit of the JSON file ``name`` of an adapter directory (for _adapter_copy)."""
    def edit(directory):
        data = json.loads((directory / name).read_text())
        change(data)
        (directory / name).write_text(json.dumps(data))
    return edit


def _rename_label(old: str, new: str):
    def change(config):
        config["id2label"] = {k: (new if v == old else v) for k, v in config["id2label"].items()}
        config["label2id"] = {(new if k == old else k): v for k, v in config["label2id"].items()}
    return change


def _checkpoint(fingerprint):
    """OUTPUT_DIR/checkpoints/step-00000003 with a progress.json holding ``fingerprint``."""
    def setup(d, monkeypatch, fx):
        step = d / "out" / "checkpoints" / "step-00000003"
        step.mkdir(parents=True)
        (step / "progress.json").write_text(json.dumps({
            "fingerprint": fingerprint, "position": {"epoch": 2, "batches_done": 0, "accumulators": [],
                                                     "seconds_in_epoch": 0.0},
            "result": {"best_dev_f1": 0.5, "best_epoch": 1, "history": [], "train_seconds": 1.0,
                       "train_tokens": 10, "optimizer_steps": 3}}))
    return setup


def _journal(records: bytes):
    def setup(d, monkeypatch, fx):
        (d / "s.journal").write_bytes(records)
    return setup


def _study_with_flags(d, monkeypatch, fx):
    """A journal whose study tune-lora has a complete trial searched with other recipe flags."""
    import optuna

    from peftner.experiments.storage import open_storage

    study = optuna.create_study(storage=open_storage(str(d / "s.journal")), study_name="tune-lora",
                                direction="maximize")
    study.set_user_attr("budget_flags", "--epochs 9")
    study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))


def _study_of_another_space(d, monkeypatch, fx):
    """A journal whose study tune-lora has a complete trial searched over another learning-rate range."""
    import optuna

    from peftner.experiments.search import describe_space
    from peftner.experiments.storage import open_storage
    from peftner.methods import get_method
    from peftner.methods.space import LogUniform

    study = optuna.create_study(storage=open_storage(str(d / "s.journal")), study_name="tune-lora",
                                direction="maximize")
    study.set_user_attr("budget_flags", "--budget-epochs 1")
    study.set_user_attr("search_space", describe_space({**get_method("lora").search_space,
                                                        "learning_rate": LogUniform(1.0, 2.0)}))
    study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))


def _user_folder(name: str):
    def setup(d, monkeypatch, fx):
        (d / "out" / name).mkdir(parents=True)
        (d / "out" / name / "notes.txt").write_text("mine")
    return setup


def _output_file(name: str, directory: bool):
    def setup(d, monkeypatch, fx):
        (d / "out").mkdir(exist_ok=True)
        (d / "out" / name).mkdir() if directory else (d / "out" / name).write_text("x")
    return setup


def _busy_output(d, monkeypatch, fx):
    """Another run holds OUTPUT_DIR (its lock, as a running peftner holds it)."""
    import fcntl

    (d / "out").mkdir()
    handle = open(d / "out" / ".peftner.lock", "w")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.write("pid 4242 on elsewhere")
    handle.flush()
    monkeypatch.setattr(sys.modules[__name__], "HELD", handle, raising=False)  # held until the case ends


def _cached_run(d, monkeypatch, fx):
    """A finished run of the matrix below, made with another learning rate."""
    run = d / "res" / "files_e1" / "runs" / "lora" / "size-all" / "seed-42"
    run.mkdir(parents=True)
    metrics = json.loads((fx["adapter"].parent / "metrics.json").read_text())
    metrics["config"]["learning_rate"] = 0.25
    (run / "metrics.json").write_text(json.dumps(metrics))


def _base_copy(d, monkeypatch, fx):
    shutil.copytree(fx["model"], d / "base")


def _run_copy(d, monkeypatch, fx):
    """OUTPUT_DIR = a copy of the trained run (adapter and test predictions included)."""
    shutil.copytree(fx["adapter"].parent, d / "out")


def _no_cuda(d, monkeypatch, fx):
    import torch

    monkeypatch.setattr(torch.version, "cuda", None)  # a CPU-only build, whatever this machine has


def _binary_stdin(d, monkeypatch, fx):
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")))


ADAPTER = ["predict", "--adapter", "{adapter}"]
PREDICT = [*ADAPTER, "--input", "{d}/in.txt"]
PREDICT_COPY = ["predict", "--adapter", "{d}/adapter", "--input", "{d}/in.txt"]  # a copy changed by the case
IN_TXT = {"in.txt": b"Alice lives in Paris\n"}
DEEP = b'{"tokens": ' + b"[" * 100000 + b"]" * 100000 + b"}\n"

CASES = [
    # ------------------------------------------------------------------ flags
    Case("epochs-0", "`--epochs 0`", ["--epochs", "0"], "--epochs must be at least 1, got 0"),
    Case("epochs-negative", "`--epochs -3`", ["--epochs", "-3"], "--epochs must be at least 1, got -3"),
    Case("epochs-text", "`--epochs five`", ["--epochs", "five"], "argument --epochs: invalid int value: 'five'"),
    Case("epochs-float", "`--epochs 1.5`", ["--epochs", "1.5"], "argument --epochs: invalid int value: '1.5'"),
    Case("batch-size-0", "`--batch-size 0`", ["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    Case("batch-size-negative", "`--batch-size -1`", ["--batch-size", "-1"], "--batch-size must be at least 1, got -1"),
    Case("eval-batch-size-0", "`--eval-batch-size 0`", ["--eval-batch-size", "0"],
         "--eval-batch-size must be at least 1, got 0"),
    Case("lr-nan", "`--learning-rate nan`", ["--learning-rate", "nan"],
         "--learning-rate must be a finite number, got nan"),
    Case("lr-inf", "`--learning-rate inf`", ["--learning-rate", "inf"],
         "--learning-rate must be a finite number, got inf"),
    Case("lr-negative", "`--learning-rate -0.001`", ["--learning-rate", "-0.001"],
         "--learning-rate must be at least 0, got -0.001"),
    Case("warmup-negative", "`--warmup-ratio -0.1`", ["--warmup-ratio", "-0.1"],
         "--warmup-ratio must be at least 0, got -0.1"),
    Case("grad-accum-0", "`--gradient-accumulation-steps 0`", ["--gradient-accumulation-steps", "0"],
         "--gradient-accumulation-steps must be at least 1, got 0"),
    Case("max-length-0", "`--max-length 0`", ["--max-length", "0"], "--max-length must be at least 1, got 0"),
    Case("max-length-2", "`--max-length 2` (BERT needs 2 positions for [CLS] and [SEP])", ["--max-length", "2"],
         "--max-length 2 leaves no room for words after the model's 2 special tokens; use at least 3"),
    Case("seed-negative", "`--seed -1`", ["--seed", "-1"], "--seed must be at least 0, got -1"),
    Case("seed-too-large", "`--seed 4294967296`", ["--seed", "4294967296"],
         "--seed must be at most 4294967295, got 4294967296"),
    Case("num-workers-negative", "`--num-workers -1`", ["--num-workers", "-1"],
         "--num-workers must be at least 0, got -1"),
    Case("mixed-precision-fp7", "`--mixed-precision fp7`", ["--mixed-precision", "fp7"],
         "--mixed-precision must be one of no, fp16, bf16, got 'fp7'"),
    Case("standardize-head-yes", "`--standardize-head yes`", ["--standardize-head", "yes"],
         "--standardize-head must be one of auto, on, off, got 'yes'"),
    Case("warmup-ratio", "`--warmup-ratio 1.5`", ["--warmup-ratio", "1.5"], "--warmup-ratio must be at most 1, got 1.5"),
    Case("weight-decay", "`--weight-decay -0.1`", ["--weight-decay", "-0.1"],
         "--weight-decay must be at least 0, got -0.1"),
    Case("max-grad-norm-nan", "`--max-grad-norm nan`", ["--max-grad-norm", "nan"],
         "--max-grad-norm must be a finite number, got nan"),
    Case("threads-0", "`--threads 0`", ["--threads", "0"], "--threads must be at least 1, got 0"),
    Case("checkpoint-every", "`--checkpoint-every -1`", ["--checkpoint-every", "-1"],
         "--checkpoint-every must be at least 0, got -1"),
    Case("keep-checkpoints", "`--keep-checkpoints -2`", ["--keep-checkpoints", "-2"],
         "--keep-checkpoints must be at least 0, got -2"),
    Case("max-train-samples-0", "`--max-train-samples 0`", ["--max-train-samples", "0"],
         "--max-train-samples must be at least 1, got 0"),
    Case("optimizer-kernel", "`--optimizer-kernel turbo`", ["--optimizer-kernel", "turbo"],
         "--optimizer-kernel must be one of auto, fused, foreach, got 'turbo'"),
    Case("tag-scheme", "`--tag-scheme bio`", ["--tag-scheme", "bio"],
         "--tag-scheme must be one of auto, IOB1, IOB2, IOBES, BILOU, none, got 'bio'"),
    Case("bool-word", "`--strict maybe`", ["--strict", "maybe"],
         "argument --refuse-invalid-transitions/--strict: expected true/false, got 'maybe'"),
    Case("unknown-flag", "an unknown flag", ["--epochs", "3", "--lorra-r", "4"], "unrecognized arguments: --lorra-r 4"),
    Case("abbreviated-flag", "an abbreviated flag (whole names only: a recorded command keeps its meaning)",
         ["--epoch", "3"], "unrecognized arguments: --epoch 3"),
    Case("model-missing-dir", "`--model` naming a directory that does not exist", ["--model", "{d}/no-such-model"],
         "{d}/no-such-model: model directory not found"),
    Case("model-is-file", "`--model` naming a file", ["--model", "{d}/in.txt"],
         "{d}/in.txt: is a file, expected a model directory (or a Hugging Face Hub model id)", files=IN_TXT),
    Case("files-incomplete", "`--train-file` without the dev and test files",
         ["--validation-file", "", "--test-file", ""],
         "--train-file, --validation-file and --test-file go together; missing: --validation-file, --test-file"),
    Case("init-adapter-missing", "`--init-adapter` naming no directory", ["--init-adapter", "{d}/nothing"],
         "{d}/nothing: no such directory (expected OUTPUT_DIR/adapter of a peftner run)"),
    Case("output-dir-under-file", "`--output-dir` below a file", ["--output-dir", "{d}/in.txt/out"],
         "{d}/in.txt/out: output directory is not writable (Not a directory)", files=IN_TXT),
    Case("lora-r-0", "`--r 0` (LoRA rank)", ["--r", "0"], "--r must be at least 1, got 0"),
    Case("lora-dropout-1", "`--lora-dropout 1`", ["--lora-dropout", "1"], "--lora-dropout must be below 1, got 1.0"),
    Case("adapter-variant", "adapter `--variant sideways`", ["--variant", "sideways"],
         "--variant must be one of houlsby, pfeiffer, got 'sideways'", method="adapter"),
    Case("adapter-reduction", "adapter `--reduction-factor 0`", ["--reduction-factor", "0"],
         "--reduction-factor must be at least 1, got 0", method="adapter"),
    Case("prompt-tokens", "prompt `--num-virtual-tokens 0`", ["--num-virtual-tokens", "0"],
         "--num-virtual-tokens must be at least 1, got 0", method="prompt"),
    Case("ptuning-dropout", "ptuning_v2 `--prefix-dropout 1.5`", ["--prefix-dropout", "1.5"],
         "--prefix-dropout must be below 1, got 1.5", method="ptuning_v2"),
    Case("qlora-dtype", "qlora `--compute-dtype int3`", ["--compute-dtype", "int3"],
         "--compute-dtype must be one of auto, bfloat16, float16, float32, got 'int3'", method="qlora"),
    Case("full-top-layers", "full `--train-top-layers -1`", ["--train-top-layers", "-1"],
         "--train-top-layers must be at least 0, got -1", method="full"),
    # ------------------------------------------------------------------ YAML configs
    Case("yaml-missing", "`--config` file missing", ["--config", "{d}/none.yaml"], "{d}/none.yaml: config file not found"),
    Case("yaml-directory", "`--config` naming a directory", ["--config", "{d}"],
         "{d}: is a directory, expected a YAML config file"),
    Case("yaml-latin1", "YAML that is not UTF-8", ["--config", "{d}/c.yaml"],
         "{d}/c.yaml:2: not valid UTF-8 (byte 26 of the file)", files={"c.yaml": b"learning_rate: 0.001\n# caf\xe9\n"}),
    Case("yaml-syntax", "YAML syntax error", ["--config", "{d}/c.yaml"],
         "{d}/c.yaml:2: invalid YAML (expected the node content, but found '<stream end>')",
         files={"c.yaml": b"weight_decay: [\n"}),
    Case("yaml-list", "YAML whose top level is a list", ["--config", "{d}/c.yaml"],
         "{d}/c.yaml: expected a mapping of option: value, got a list", files={"c.yaml": b"- 1\n- 2\n"}),
    Case("yaml-int-key", "YAML option name that is not text", ["--config", "{d}/c.yaml"],
         "{d}/c.yaml: option names must be text, got 1", files={"c.yaml": b"1: 2\n"}),
    Case("yaml-unknown", "YAML unknown option", ["--config", "{d}/c.yaml"],
         "{d}/c.yaml:2: unknown option(s) lerning_rate for method lora",
         files={"c.yaml": b"strict: false\nlerning_rate: 1\n"}),
    Case("yaml-bool-word", "YAML `strict: maybe`", ["--config", "{d}/c.yaml"],
         "{d}/c.yaml:1: strict must be true or false, got 'maybe'", files={"c.yaml": b"strict: maybe\n"}),
    Case("yaml-bool-number", "YAML `strict: 2`", ["--config", "{d}/c.yaml"],
         "{d}/c.yaml:1: strict must be true or false, got 2", files={"c.yaml": b"strict: 2\n"}),
    Case("yaml-int-text", "YAML `num_workers: two`", ["--config", "{d}/c.yaml"],
         "{d}/c.yaml:1: num_workers must be an integer, got 'two'", files={"c.yaml": b"num_workers: two\n"}),
    Case("yaml-int-list", "YAML `warmup_ratio: [0.1]`", ["--config", "{d}/c.yaml"],
         "{d}/c.yaml:1: warmup_ratio must be a number, got [0.1]", files={"c.yaml": b"warmup_ratio: [0.1]\n"}),
    Case("yaml-int-fraction", "YAML `gradient_accumulation_steps: 1.5`", ["--config", "{d}/c.yaml"],
         "{d}/c.yaml:1: gradient_accumulation_steps must be an integer, got 1.5",
         files={"c.yaml": b"gradient_accumulation_steps: 1.5\n"}),
    Case("yaml-nan", "YAML `learning_rate: .nan`", ["--config", "{d}/c.yaml"],
         "{d}/c.yaml:2: learning_rate must be a finite number, got nan",
         files={"c.yaml": b"strict: true\nlearning_rate: .nan\n"}),
    Case("yaml-string-map", "YAML `mixed_precision: {a: 1}`", ["--config", "{d}/c.yaml"],
         "{d}/c.yaml:1: mixed_precision must be a string, got {'a': 1}", files={"c.yaml": b"mixed_precision: {a: 1}\n"}),
    Case("yaml-range", "YAML `num_workers: -4`", ["--config", "{d}/c.yaml"],
         "{d}/c.yaml:1: num_workers must be at least 0, got -4", files={"c.yaml": b"num_workers: -4\n"}),
    Case("yaml-null", "YAML `learning_rate:` (no value)", ["--config", "{d}/c.yaml"],
         "{d}/c.yaml:1: learning_rate needs a value", files={"c.yaml": b"learning_rate:\n"}),
    Case("yaml-method-knob", "YAML `method: {r: 0}`", ["--config", "{d}/c.yaml"],
         "{d}/c.yaml:3: r must be at least 1, got 0", files={"c.yaml": b"strict: false\nmethod:\n  r: 0\n"}),
    Case("yaml-method-shape", "YAML `method: 5`", ["--config", "{d}/c.yaml"],
         "{d}/c.yaml:1: method must be a mapping of method options, got 5", files={"c.yaml": b"method: 5\n"}),
    # ------------------------------------------------------------------ data files
    Case("data-missing", "data file missing", data("nope.conll"), "{d}/nope.conll: file not found"),
    Case("data-directory", "a directory given as data file", data("sub"), "{d}/sub: is a directory, expected a data file",
         setup=lambda d, mp, fx: (d / "sub").mkdir()),
    Case("data-permission", "data file without read permission", data("locked.conll"),
         "{d}/locked.conll: cannot be read (permission denied)", files={"locked.conll": GOOD_CONLL.encode()},
         setup=_deny("locked.conll")),
    Case("data-empty", "empty or whitespace-only file", data("e.conll"), "{d}/e.conll: file is empty",
         files={"e.conll": b"\n \r\n"}),
    Case("data-docstart-only", "only `-DOCSTART-` lines", data("e.conll"),
         "{d}/e.conll: no sentences found (only blank or -DOCSTART- lines)", files={"e.conll": b"-DOCSTART- O\n\n"}),
    Case("data-columns", "a token line with another column count", data("c.conll"),
         "{d}/c.conll:2: 3 columns, but line 1 has 2 (inconsistent column count)",
         files={"c.conll": b"alice\tB-PER\nlives\tVBZ\tO\n"}),
    Case("data-no-tag", "a line without a tag column", data("c.conll"),
         "{d}/c.conll:2: expected a token and a tag separated by a tab or spaces, got 'lives'",
         files={"c.conll": b"alice B-PER\nlives\n"}),
    Case("data-empty-token", "an empty token (`<TAB>O`)", data("c.conll"), "{d}/c.conll:2: empty token in the first column",
         files={"c.conll": b"alice\tB-PER\n\tO\n"}),
    Case("data-empty-tag", "an empty tag (`alice<TAB>`)", data("c.conll"), "{d}/c.conll:1: empty tag in the last column",
         files={"c.conll": b"alice\t\nbob\tO\n"}),
    Case("data-latin1", "bytes that are not UTF-8", data("c.conll"), "{d}/c.conll:2: not valid UTF-8 (byte 1 of the line)",
         files={"c.conll": b"alice\tB-PER\nm\xfcnchen\tB-LOC\n"}),
    Case("data-latin1-cr", "bytes that are not UTF-8, CR-only line endings", data("c.conll"),
         "{d}/c.conll:3: not valid UTF-8 (byte 1 of the line)", files={"c.conll": b"alice\tB-PER\r\rm\xfcnchen\tB-LOC\r"}),
    Case("data-utf16-odd", "a UTF-16 byte-order mark followed by an odd number of bytes", data("c.conll"),
         "{d}/c.conll: not valid UTF-16 after its byte-order mark", files={"c.conll": b"\xff\xfea\x00b"}),
    Case("data-binary", "a binary file", data("c.conll"), "{d}/c.conll:1: not valid UTF-8 (byte 0 of the line)",
         files={"c.conll": b"\x89PNG\r\n\x1a\n\x00\x00"}),
    Case("data-single-tag", "a single tag in the training data", data("c.conll"),
         "{d}/c.conll: the training data has a single tag ('O'); a tagger needs at least two",
         files={"c.conll": b"alice\tO\nlives\tO\n"}),
    Case("data-zero-for-o", "one `0` typed for `O` in BIO data", data("c.conll"),
         "{d}/c.conll:7: tag '0' is not a BIO/IOBES tag (O, B-X, I-X, E-X, S-X) but 85.7% of the training tags are; "
         "fix it, or pass --tag-scheme none to score every tag by token accuracy",
         files={"c.conll": GOOD_CONLL.replace("met\tO", "met\t0").encode()}),
    Case("data-unseen-tag", "a dev tag never seen in training",
         ["--validation-file", "{d}/dev.conll"], "{d}/dev.conll:1: tag 'B-ORG' never occurs in the training data "
         "(pass --allow-unseen-tags to score it as 'O')", files={"dev.conll": b"acme\tB-ORG\n"}),
    Case("data-strict", "an invalid BIO transition with `--strict`", [*data("c.conll"), "--strict"],
         "{d}/c.conll:2: invalid transition: 'I-LOC' does not continue an entity (--refuse-invalid-transitions "
         "refuses; drop it to repair I- to B-)", files={"c.conll": b"alice\tB-PER\nparis\tI-LOC\n"}),
    Case("jsonl-syntax", "JSON Lines with a syntax error", data("c.jsonl"),
         "{d}/c.jsonl:2: invalid JSON: Expecting property name enclosed in double quotes (column 2)",
         files={"c.jsonl": _jsonl({"tokens": ["a"], "tags": ["O"]}) + b"{oops\n"}),
    Case("jsonl-deep", "JSON nested 100,000 levels deep", data("c.jsonl"), "{d}/c.jsonl:1: invalid JSON: nested too deeply",
         files={"c.jsonl": DEEP}),
    Case("jsonl-huge-int", "a 5,000-digit JSON number", data("c.jsonl"),
         "{d}/c.jsonl:1: invalid JSON: Exceeds the limit (4300 digits) for integer string conversion: value has "
         "5000 digits; use sys.set_int_max_str_digits() to increase the limit",
         files={"c.jsonl": b'{"tokens": [' + b"9" * 5000 + b'], "tags": ["O"]}\n'}),
    Case("jsonl-nan", "a JSON `NaN` literal", data("c.jsonl"), "{d}/c.jsonl:1: invalid JSON: NaN is not valid JSON",
         files={"c.jsonl": b'{"tokens": ["a"], "tags": ["O"], "score": NaN}\n'}),
    Case("jsonl-array", "a JSON array instead of an object", data("c.jsonl"),
         "{d}/c.jsonl:1: expected an object with \"tokens\" and \"tags\" lists", files={"c.jsonl": b'[["a"], ["O"]]\n'}),
    Case("jsonl-not-list", "`\"tokens\"` that is a string", data("c.jsonl"),
         "{d}/c.jsonl:1: \"tokens\" and \"tags\" must be lists", files={"c.jsonl": b'{"tokens": "a b", "tags": ["O"]}\n'}),
    Case("jsonl-count", "token/tag count mismatch", data("c.jsonl"), "{d}/c.jsonl:1: 2 tokens but 1 tags",
         files={"c.jsonl": _jsonl({"tokens": ["a", "b"], "tags": ["O"]})}),
    Case("jsonl-empty-sentence", "an empty sentence", data("c.jsonl"), "{d}/c.jsonl:1: empty sentence (no tokens)",
         files={"c.jsonl": _jsonl({"tokens": [], "tags": []})}),
    Case("jsonl-token-number", "a token that is a number", data("c.jsonl"),
         "{d}/c.jsonl:1: every token must be a non-empty string", files={"c.jsonl": _jsonl({"tokens": [3], "tags": ["O"]})}),
    Case("jsonl-token-empty", "an empty token `\"\"`", data("c.jsonl"), "{d}/c.jsonl:1: every token must be a non-empty string",
         files={"c.jsonl": _jsonl({"tokens": [""], "tags": ["O"]})}),
    Case("jsonl-surrogate", "a token holding a lone surrogate `\\ud800`", data("c.jsonl"),
         "{d}/c.jsonl:1: token '\\ud800' holds a lone surrogate (not a character)",
         files={"c.jsonl": b'{"tokens": ["\\ud800"], "tags": ["O"]}\n'}),
    Case("jsonl-tag-blank", "a blank tag", data("c.jsonl"), "{d}/c.jsonl:1: every tag must be a non-empty string",
         files={"c.jsonl": _jsonl({"tokens": ["a"], "tags": [" "]})}),
    # ------------------------------------------------------------------ peftner predict
    Case("predict-adapter-missing", "`--adapter` naming no directory", ["predict", "--adapter", "{d}/none", "--input", "{d}/in.txt"],
         "{d}/none: no such directory (expected OUTPUT_DIR/adapter of a peftner run)", "predict", IN_TXT),
    Case("predict-weights-missing", "adapter without `adapter_model.safetensors`",
         ["predict", "--adapter", "{d}/adapter", "--input", "{d}/in.txt"],
         "{d}/adapter/adapter_model.safetensors: weights file is missing", "predict", IN_TXT,
         _adapter_copy(lambda a: (a / "adapter_model.safetensors").unlink())),
    Case("predict-weights-truncated", "truncated `adapter_model.safetensors`",
         ["predict", "--adapter", "{d}/adapter", "--input", "{d}/in.txt"],
         "{d}/adapter/adapter_model.safetensors: truncated or corrupt safetensors file (Error while deserializing "
         "header: incomplete metadata, file not fully covered)", "predict", IN_TXT, _adapter_copy(_truncate)),
    Case("predict-weights-garbage", "`adapter_model.safetensors` that is not safetensors",
         ["predict", "--adapter", "{d}/adapter", "--input", "{d}/in.txt"],
         "{d}/adapter/adapter_model.safetensors: truncated or corrupt safetensors file (Error while deserializing "
         "header: header too large)", "predict", IN_TXT,
         _adapter_copy(lambda a: (a / "adapter_model.safetensors").write_bytes(b"not a safetensors file"))),
    Case("predict-weights-nan", "adapter weights holding NaN", ["predict", "--adapter", "{d}/adapter", "--input", "{d}/in.txt"],
         "{d}/adapter/adapter_model.safetensors: tensor {nan_key} holds NaN or infinite values; these weights "
         "cannot give meaningful predictions (retrain, or use an earlier checkpoint)", "predict", IN_TXT,
         _adapter_copy(_edit_weights(_poison))),
    Case("predict-weights-incomplete", "adapter weights lacking a tensor (the head)",
         ["predict", "--adapter", "{d}/adapter", "--input", "{d}/in.txt"],
         "{d}/adapter/adapter_model.safetensors: lacks the weights {head_key}; the file is incomplete or was "
         "written for another configuration", "predict", IN_TXT, _adapter_copy(_edit_weights(_drop_head)),
         model_loads=True),
    Case("predict-weights-shape", "adapter weights of the wrong shape (a head for 5 tags, 3 in config.json)",
         ["predict", "--adapter", "{d}/adapter", "--input", "{d}/in.txt"],
         "{d}/adapter: the adapter does not fit the base model {model} (a different base?): size mismatch for "
         "base_model.model.classifier.modules_to_save.default.weight: copying a param with shape torch.Size([5, 32]) from checkpoint, the shape in current model "
         "is torch.Size([3, 32]).", "predict", IN_TXT, _adapter_copy(_edit_weights(_wrong_shape)), model_loads=True),
    Case("predict-full-incomplete", "a fully fine-tuned model directory lacking its head's weight",
         ["predict", "--adapter", "{d}/model", "--input", "{d}/in.txt"],
         "{d}/model: the model lacks the weights classifier.weight; the directory is incomplete or was written "
         "for another label set", "predict", IN_TXT, _full_without_head, model_loads=True),
    Case("predict-config-missing", "adapter without `config.json`", ["predict", "--adapter", "{d}/adapter", "--input", "{d}/in.txt"],
         "{d}/adapter: config.json with the label maps is missing", "predict", IN_TXT,
         _adapter_copy(lambda a: (a / "config.json").unlink())),
    Case("predict-output-dir", "`--output` naming a directory", [*PREDICT, "--output", "{d}"],
         "{d}: is a directory, expected an output file", "predict", IN_TXT),
    Case("predict-output-no-parent", "`--output` in a directory that does not exist", [*PREDICT, "--output", "{d}/x/out.jsonl"],
         "{d}/x/out.jsonl: directory {d}/x does not exist", "predict", IN_TXT),
    Case("predict-input-missing", "`--input` file missing", [*ADAPTER, "--input", "{d}/none.txt"],
         "{d}/none.txt: file not found", "predict"),
    Case("predict-input-latin1", "`--input` that is not UTF-8", [*PREDICT],
         "{d}/in.txt:1: not valid UTF-8 (byte 1 of the line)", "predict", {"in.txt": b"M\xfcnchen\n"}),
    Case("predict-stdin-binary", "binary data on standard input", [*ADAPTER, "--input", "-"],
         "<stdin>:1: not valid UTF-8 (byte 0 of the line)", "predict", setup=_binary_stdin),
    Case("predict-jsonl-bad", "`--input` JSON Lines that are not objects", [*ADAPTER, "--input", "{d}/in.jsonl"],
         "{d}/in.jsonl:1: expected {\"tokens\": [...]}, {\"text\": \"...\"} or a JSON string", "predict",
         {"in.jsonl": b"[1, 2]\n"}),
    Case("predict-device-cuda", "`--device cuda` on a CPU-only torch build", [*PREDICT, "--device", "cuda"],
         "--device cuda: this torch build has no CUDA support (a CPU-only build); use --device cpu or install a "
         "CUDA build of torch", "predict", IN_TXT, _no_cuda),
    Case("predict-device-bogus", "`--device gpu0`", [*PREDICT, "--device", "gpu0"],
         "--device gpu0: not a device (use cpu, cuda or cuda:N)", "predict", IN_TXT),
    Case("predict-batch-size", "`--batch-size 0`", [*PREDICT, "--batch-size", "0"],
         "--batch-size must be at least 1, got 0", "predict", IN_TXT),
    Case("predict-precision", "`--precision fp8`", [*PREDICT, "--precision", "fp8"],
         "argument --precision: invalid choice: 'fp8' (choose from 'exact', 'bf16-checked')", "predict", IN_TXT),
    Case("predict-check-margin", "`--check-margin -1`", [*PREDICT, "--precision", "bf16-checked", "--check-margin",
                                                          "-1"],
         "--check-margin must be a number >= 0, got -1.0", "predict", IN_TXT),
    Case("predict-compile-exact", "`--compile` without `--precision bf16-checked`", [*PREDICT, "--compile"],
         "--compile compiles the bfloat16 pass of --precision bf16-checked; the exact mode runs uncompiled so that "
         "its tags stay the ones the run scored", "predict", IN_TXT),
    Case("predict-conll-tab", "`--output-format conll` with a tab inside a word", [*ADAPTER, "--input", "{d}/in.jsonl",
                                                                                  "--output-format", "conll"],
         "--output-format conll: word 2 of input 1 ('a\\tb') holds a tab or line break, which a CoNLL line cannot "
         "hold; use --output-format jsonl", "predict", {"in.jsonl": _jsonl({"tokens": ["x", "a\tb"]})}),
    Case("predict-conll-newline", "`--output-format conll` with a newline inside a word",
         [*ADAPTER, "--input", "{d}/in.jsonl", "--output-format", "conll"],
         "--output-format conll: word 1 of input 1 ('a\\nb') holds a tab or line break, which a CoNLL line cannot "
         "hold; use --output-format jsonl", "predict", {"in.jsonl": _jsonl({"tokens": ["a\nb"]})}),
    Case("predict-unknown-flag", "`peftner predict` without `--input`", [*ADAPTER],
         "the following arguments are required: --input", "predict"),
    # ------------------------------------------------------------------ peftner export
    Case("export-corrupt", "`peftner export` of a truncated adapter",
         ["export", "--adapter", "{d}/adapter", "--output", "{d}/out", "--merge"],
         "{d}/adapter/adapter_model.safetensors: truncated or corrupt safetensors file (Error while deserializing "
         "header: incomplete metadata, file not fully covered)", "export", setup=_adapter_copy(_truncate)),
    Case("export-nan", "`peftner export` of an adapter holding NaN",
         ["export", "--adapter", "{d}/adapter", "--output", "{d}/out", "--merge"],
         "{d}/adapter/adapter_model.safetensors: tensor {nan_key} holds NaN or infinite values; these weights "
         "cannot give meaningful predictions (retrain, or use an earlier checkpoint)", "export",
         setup=_adapter_copy(_edit_weights(_poison))),
    # ------------------------------------------------------------------ peftner tune / compare
    Case("tune-n-trials", "`peftner tune --n-trials 0`", ["tune", "lora", "--n-trials", "0"],
         "--n-trials must be at least 1, got 0", "tune"),
    Case("tune-two-budgets", "`peftner tune` with both `--budget-epochs` and `--budget-steps`",
         ["tune", "lora", "--budget-epochs", "2", "--budget-steps", "100"],
         "use either --budget-epochs or --budget-steps", "tune"),
    Case("tune-seeds", "`peftner tune --seeds -1`", ["tune", "lora", "--seeds", "-1"],
         "--seeds must be at least 0, got -1", "tune"),
    Case("compare-steps", "`peftner compare --steps 0`", ["compare", "--steps", "0"],
         "--steps must be at least 1, got 0", "compare"),
    Case("compare-seeds", "`peftner compare --seeds 0`", ["compare", "--seeds", "0"],
         "--seeds must be at least 1, got 0", "compare"),
    # ------------------------------------------------------------------ continued training
    Case("init-adapter-nan", "`--init-adapter` holding NaN weights", ["--init-adapter", "{d}/adapter"],
         "{d}/adapter/adapter_model.safetensors: tensor {nan_key} holds NaN or infinite values; these weights "
         "cannot give meaningful predictions (retrain, or use an earlier checkpoint)",
         setup=_adapter_copy(_edit_weights(_poison))),
    Case("init-adapter-truncated", "`--init-adapter` with truncated weights", ["--init-adapter", "{d}/adapter"],
         "{d}/adapter/adapter_model.safetensors: truncated or corrupt safetensors file (Error while deserializing "
         "header: incomplete metadata, file not fully covered)", setup=_adapter_copy(_truncate)),
    # ================================================================== round three (issue 23)
    # ------------------------------------------------------------------ tag schemes
    Case("scheme-lowercase", "`--tag-scheme iob2` (schemes are named in capitals)", ["--tag-scheme", "iob2"], "--tag-scheme must be one of auto, IOB1, IOB2, IOBES, BILOU, none, got 'iob2'"),
    Case("scheme-f1-no-scheme", "`--scheme-f1` with `--tag-scheme none`", ["--scheme-f1", "--tag-scheme", "none"], "--scheme-f1 scores entities by their tag scheme's rules, but these tags follow no scheme (scored by token accuracy); drop --scheme-f1"),
    Case("scheme-mixed-conll", "a file mixing IOBES (`S-`) and BILOU (`U-`) tags", data("c.conll"), "{d}/c.conll:4: tag 'U-LOC' is BILOU but {d}/c.conll:1 has 'S-PER' (IOBES): the file mixes tag schemes; convert it to one (peftner reads IOB1, IOB2, IOBES and BILOU)",
         files={"c.conll": b"alice\tS-PER\nlives\tO\n\nparis\tU-LOC\nbob\tO\n"}),
    Case("scheme-mixed-jsonl", "JSON Lines mixing BILOU (`L-`) and IOBES (`E-`) tags", data("c.jsonl"), "{d}/c.jsonl:2: tag 'E-PER' is IOBES but {d}/c.jsonl:1 has 'L-LOC' (BILOU): the file mixes tag schemes; convert it to one (peftner reads IOB1, IOB2, IOBES and BILOU)",
         files={"c.jsonl": _jsonl({"tokens": ["new", "york"], "tags": ["B-LOC", "L-LOC"]},
                                  {"tokens": ["bob", "smith"], "tags": ["B-PER", "E-PER"]})}),
    Case("scheme-named-iob2", "`--tag-scheme IOB2` on data with an `S-` tag", [*data("c.conll"), "--tag-scheme", "IOB2"],
         "{d}/c.conll:3: tag 'S-LOC' is outside IOB2 (--tag-scheme IOB2 allows O and B-, I-); fix the tag, or name the file's scheme (or drop --tag-scheme to detect it)", files={"c.conll": b"alice\tB-PER\nlives\tO\nparis\tS-LOC\n"}),
    Case("scheme-named-bilou", "`--tag-scheme BILOU` on data with an `E-` tag", [*data("c.conll"), "--tag-scheme", "BILOU"],
         "{d}/c.conll:2: tag 'E-LOC' is outside BILOU (--tag-scheme BILOU allows O and B-, I-, L-, U-); fix the tag, or name the file's scheme (or drop --tag-scheme to detect it)", files={"c.conll": b"new\tB-LOC\nyork\tE-LOC\nbob\tU-PER\n"}),
    Case("scheme-named-iobes", "`--tag-scheme IOBES` on data with a `U-` tag", [*data("c.conll"), "--tag-scheme", "IOBES"],
         "{d}/c.conll:3: tag 'U-PER' is outside IOBES (--tag-scheme IOBES allows O and B-, I-, E-, S-); fix the tag, or name the file's scheme (or drop --tag-scheme to detect it)", files={"c.conll": b"alice\tS-PER\nlives\tO\nbob\tU-PER\n"}),
    Case("scheme-named-iob1", "`--tag-scheme IOB1` on data with an `L-` tag", [*data("c.conll"), "--tag-scheme", "IOB1"],
         "{d}/c.conll:2: tag 'L-LOC' is outside IOB1 (--tag-scheme IOB1 allows O and B-, I-); fix the tag, or name the file's scheme (or drop --tag-scheme to detect it)", files={"c.conll": b"new\tI-LOC\nyork\tL-LOC\n"}),
    Case("scheme-named-no-scheme-tag", "`--tag-scheme BILOU` with a `0` typed for `O`",
         [*data("c.conll"), "--tag-scheme", "BILOU"], "{d}/c.conll:5: tag '0' is not a BIO/IOBES tag (O, B-X, I-X, E-X, S-X) but 80.0% of the training tags are; fix it, or pass --tag-scheme none to score every tag by token accuracy",
         files={"c.conll": b"alice\tU-PER\nlives\tO\nin\tO\nparis\tU-LOC\nsoon\t0\n"}),
    Case("scheme-dev-other", "a dev file in IOBES, training data in IOB2", ["--validation-file", "{d}/dev.conll"], "{d}/dev.conll:1: tag 'S-PER' is IOBES but the training data is IOB2: the files mix tag schemes; convert them to one",
         files={"dev.conll": b"alice\tS-PER\nlives\tO\n"}),
    Case("scheme-test-other", "a test file in BILOU, training data in IOB2", ["--test-file", "{d}/test.conll"], "{d}/test.conll:1: tag 'U-PER' is BILOU but the training data is IOB2: the files mix tag schemes; convert them to one",
         files={"test.conll": b"bob\tU-PER\nmet\tO\n"}),
    Case("scheme-lowercase-prefix", "a lower-case prefix `b-PER` among BIO tags", data("c.conll"), "{d}/c.conll:8: tag 'b-PER' is not a BIO/IOBES tag (O, B-X, I-X, E-X, S-X) but 85.7% of the training tags are; fix it, or pass --tag-scheme none to score every tag by token accuracy",
         files={"c.conll": GOOD_CONLL.replace("carol\tB-PER", "carol\tb-PER").encode()}),
    Case("scheme-prefix-without-type", "a tag `B-` without an entity type", data("c.conll"), "{d}/c.conll:8: tag 'B-' is not a BIO/IOBES tag (O, B-X, I-X, E-X, S-X) but 85.7% of the training tags are; fix it, or pass --tag-scheme none to score every tag by token accuracy",
         files={"c.conll": GOOD_CONLL.replace("carol\tB-PER", "carol\tB-").encode()}),
    Case("scheme-init-adapter", "`--init-adapter` trained on IOB2 tags, data in IOBES", [*data("c.conll"),
                                                                                     "--init-adapter", "{adapter}"],
         "--init-adapter {adapter}: its labels are IOB2 tags but this data is IOBES; convert the data to IOB2 (or pass --tag-scheme IOB2 if that is what it is)", files={"c.conll": b"alice\tS-PER\nlives\tO\nin\tO\nparis\tS-LOC\n"}),
    # ------------------------------------------------------------------ document markers, odd tokens
    Case("jsonl-docstart-token", "a `-DOCSTART-` token inside a JSON Lines sentence", data("c.jsonl"), "{d}/c.jsonl:1: token '-DOCSTART-' is the -DOCSTART- marker, which the run's CoNLL output (test_predictions.conll) cannot hold; fix the token",
         files={"c.jsonl": _jsonl({"tokens": ["-DOCSTART-", "alice"], "tags": ["O", "B-PER"]})}),
    Case("jsonl-docstart-only", "JSON Lines holding only `-DOCSTART-` records", data("c.jsonl"), "{d}/c.jsonl: no sentences found (only blank or -DOCSTART- lines)",
         files={"c.jsonl": _jsonl({"tokens": ["-DOCSTART-"], "tags": ["O"]})}),
    Case("jsonl-token-tab", "a JSON Lines token holding a tab", data("c.jsonl"), "{d}/c.jsonl:1: token 'a\\tb' holds a tab or line break, which the run's CoNLL output (test_predictions.conll) cannot hold; fix the token",
         files={"c.jsonl": _jsonl({"tokens": ["a\tb", "c"], "tags": ["B-PER", "O"]})}),
    Case("jsonl-token-newline", "a JSON Lines token holding a line break", data("c.jsonl"), "{d}/c.jsonl:1: token 'a\\nb' holds a tab or line break, which the run's CoNLL output (test_predictions.conll) cannot hold; fix the token",
         files={"c.jsonl": _jsonl({"tokens": ["a\nb"], "tags": ["B-PER"]})}),
    Case("jsonl-token-space-end", "a JSON Lines token ending in a space", data("c.jsonl"), "{d}/c.jsonl:1: token 'alice ' begins or ends with a space, which the run's CoNLL output (test_predictions.conll) cannot hold; fix the token",
         files={"c.jsonl": _jsonl({"tokens": ["alice ", "lives"], "tags": ["B-PER", "O"]})}),
    Case("jsonl-token-bom", "a JSON Lines token starting with U+FEFF", data("c.jsonl"), "{d}/c.jsonl:1: token '\\ufeffalice' begins with a byte-order mark (U+FEFF), which the run's CoNLL output (test_predictions.conll) cannot hold; fix the token",
         files={"c.jsonl": _jsonl({"tokens": ["\ufeffalice"], "tags": ["B-PER"]})}),
    Case("jsonl-tag-tab", "a JSON Lines tag holding a tab", data("c.jsonl"), "{d}/c.jsonl:1: tag 'B-\\tPER' holds a tab or line break, or begins or ends with a space; fix the tag",
         files={"c.jsonl": _jsonl({"tokens": ["alice"], "tags": ["B-\tPER"]})}),
    Case("jsonl-tag-space-end", "a JSON Lines tag ending in a space", data("c.jsonl"), "{d}/c.jsonl:1: tag 'B-PER ' holds a tab or line break, or begins or ends with a space; fix the tag",
         files={"c.jsonl": _jsonl({"tokens": ["alice"], "tags": ["B-PER "]})}),
    Case("jsonl-key-twice", "a JSON Lines record giving `\"tags\"` twice", data("c.jsonl"), "{d}/c.jsonl:1: invalid JSON: key 'tags' appears twice in one object",
         files={"c.jsonl": b'{"tokens": ["alice"], "tags": ["B-PER"], "tags": ["O"]}\n'}),
    Case("conll-joined-bom", "two CoNLL files joined with their byte-order marks", data("c.conll"), "{d}/c.conll:3: a byte-order mark (U+FEFF) starts this line: files joined with their marks? Remove it",
         files={"c.conll": b"\xef\xbb\xbfalice\tB-PER\n\n\xef\xbb\xbf-DOCSTART- O\nbob\tB-PER\n"}),
    Case("jsonl-joined-bom", "two JSON Lines files joined with their byte-order marks", data("c.jsonl"), "{d}/c.jsonl:2: a byte-order mark (U+FEFF) starts this line: files joined with their marks? Remove it",
         files={"c.jsonl": b"\xef\xbb\xbf" + _jsonl({"tokens": ["a"], "tags": ["B-PER"]}) + b"\xef\xbb\xbf"
                + _jsonl({"tokens": ["b"], "tags": ["O"]})}),
    # ------------------------------------------------------------------ configs that would mean two things
    Case("yaml-key-twice", "YAML giving one key twice", ["--config", "{d}/c.yaml"], "{d}/c.yaml:3: epochs is given twice (also on line 1); keep one",
         files={"c.yaml": b"epochs: 1\nlearning_rate: 0.1\nepochs: 3\n"}),
    Case("yaml-two-spellings", "YAML `learning_rate` and `learning-rate`", ["--config", "{d}/c.yaml"], "{d}/c.yaml:2: learning-rate sets the same option as learning_rate on line 1; keep one",
         files={"c.yaml": b"learning_rate: 0.1\nlearning-rate: 0.2\n"}),
    Case("yaml-old-and-new-name", "YAML `strict` and `refuse_invalid_transitions`", ["--config", "{d}/c.yaml"], "{d}/c.yaml:2: refuse_invalid_transitions sets the same option as strict on line 1; keep one",
         files={"c.yaml": b"strict: true\nrefuse_invalid_transitions: false\n"}),
    Case("yaml-top-and-method", "YAML `r` at the top level and under `method:`", ["--config", "{d}/c.yaml"], "{d}/c.yaml:3: r sets the same option as r on line 1; keep one",
         files={"c.yaml": b"r: 4\nmethod:\n  r: 8\n"}),
    Case("yaml-method-key-twice", "YAML `method:` giving one key twice", ["--config", "{d}/c.yaml"], "{d}/c.yaml:3: r is given twice (also on line 2); keep one",
         files={"c.yaml": b"method:\n  r: 4\n  r: 8\n"}),
    Case("yaml-unquoted-no", "YAML `mixed_precision: no` (YAML reads it as false)", ["--config", "{d}/c.yaml"], "{d}/c.yaml:1: mixed_precision must be a string, got False (YAML reads an unquoted no, off, yes or on as true/false: put the value in quotes)",
         files={"c.yaml": b"mixed_precision: no\n"}),
    Case("yaml-unquoted-on", "YAML `tag_scheme: off`", ["--config", "{d}/c.yaml"], "{d}/c.yaml:1: tag_scheme must be a string, got False (YAML reads an unquoted no, off, yes or on as true/false: put the value in quotes)",
         files={"c.yaml": b"tag_scheme: off\n"}),
    Case("yaml-two-documents", "YAML holding two documents", ["--config", "{d}/c.yaml"], "{d}/c.yaml:2: invalid YAML (but found another document)",
         files={"c.yaml": b"epochs: 1\n---\nepochs: 2\n"}),
    # ------------------------------------------------------------------ outputs never clobber inputs
    Case("output-user-adapter", "`--output-dir` whose `adapter/` holds the user's files", [], "{d}/out/adapter: holds files peftner did not write (no peftner.json), and the run replaces this folder; move them or choose another --output-dir",
         setup=_user_folder("adapter")),
    Case("output-checkpoints-file", "`--output-dir` whose `checkpoints` is a file", [], "{d}/out/checkpoints: is a file, but the run writes its checkpoints folder there; move it or choose another --output-dir",
         setup=_output_file("checkpoints", directory=False)),
    Case("output-adapter-file", "`--output-dir` whose `adapter` is a file", [], "{d}/out/adapter: is a file, but the run writes its adapter folder there; move it or choose another --output-dir",
         setup=_output_file("adapter", directory=False)),
    Case("output-metrics-dir", "`--output-dir` whose `metrics.json` is a directory", [], "{d}/out/metrics.json: is a directory, but the run writes its metrics.json there; move it or choose another --output-dir",
         setup=_output_file("metrics.json", directory=True)),
    Case("output-predictions-dir", "`--output-dir` whose `test_predictions.conll` is a directory", [], "{d}/out/test_predictions.conll: is a directory, but the run writes its test_predictions.conll there; move it or choose another --output-dir",
         setup=_output_file("test_predictions.conll", directory=True)),
    Case("output-test-file", "`--test-file` that is the run's own `test_predictions.conll`",
         ["--test-file", "{d}/out/test_predictions.conll"], "--test-file {d}/out/test_predictions.conll is also the output {d}/out/test_predictions.conll, which would overwrite it; copy it elsewhere first, or choose another --output-dir", setup=_run_copy),
    Case("output-init-adapter", "`--init-adapter OUTPUT_DIR/adapter` (the run replaces it)",
         ["--init-adapter", "{d}/out/adapter"], "--init-adapter {d}/out/adapter is also the output {d}/out/adapter, which would overwrite it; copy it elsewhere first, or choose another --output-dir", setup=_run_copy),
    Case("output-data-in-adapter", "a data file inside `OUTPUT_DIR/adapter`",
         ["--train-file", "{d}/out/adapter/train.conll"], "--train-file {d}/out/adapter/train.conll lies inside the output {d}/out/adapter, which is replaced; copy it elsewhere first, or choose another --output-dir",
         setup=lambda d, mp, fx: (_run_copy(d, mp, fx), shutil.copy(fx["train"], d / "out" / "adapter" / "train.conll"))),
    Case("output-busy", "`--output-dir` another run is writing into at the same time", [],
         "{d}/out: another run is writing into this folder (pid 4242 on elsewhere); wait for it to end, or choose "
         "another --output-dir", setup=_busy_output),
    # ------------------------------------------------------------------ checkpoints
    Case("resume-other-world-size", "`--resume` of a checkpoint written by 2 processes, with 1", ["--resume"], "{d}/out/checkpoints/step-00000003: written by a run of 2 process(es), this one has 1: the steps per epoch and the schedule would differ; resume with 2 process(es) (accelerate launch --num_processes 2 ...), or drop --resume to start over",
         setup=_checkpoint({"world_size": 2}), model_loads=True),
    Case("resume-fingerprint-not-object", "`--resume` of a checkpoint whose fingerprint is not an object",
         ["--resume"], "{d}/out/checkpoints/step-00000003: unreadable checkpoint (fingerprint and result must be objects)", setup=_checkpoint([]), model_loads=True),
    # ------------------------------------------------------------------ peftner predict: reader parity, clobbering
    Case("predict-conll-empty-token", "CoNLL input with an empty token (`<TAB>O`), as training reads it",
         [*ADAPTER, "--input", "{d}/in.conll"], "{d}/in.conll:2: empty token in the first column", "predict", {"in.conll": b"alice\tO\n\tO\n"}),
    Case("predict-conll-columns", "CoNLL input with another column count", [*ADAPTER, "--input", "{d}/in.conll"], "{d}/in.conll:2: 3 columns, but line 1 has 2 (inconsistent column count)",
         "predict", {"in.conll": b"alice\tO\nlives\tVBZ\tO\n"}),
    Case("predict-conll-docstart-only", "CoNLL input of `-DOCSTART-` lines only", [*ADAPTER, "--input", "{d}/in.conll"],
         "{d}/in.conll: no sentences found (only blank or -DOCSTART- lines)", "predict", {"in.conll": b"-DOCSTART- O\n\n"}),
    Case("predict-jsonl-key-twice", "JSON Lines input giving `\"tokens\"` twice", [*ADAPTER, "--input", "{d}/in.jsonl"],
         "{d}/in.jsonl:1: invalid JSON: key 'tokens' appears twice in one object", "predict", {"in.jsonl": b'{"tokens": ["a"], "tokens": ["b"]}\n'}),
    Case("predict-jsonl-surrogate", "JSON Lines input with a lone surrogate", [*ADAPTER, "--input", "{d}/in.jsonl"],
         "{d}/in.jsonl:1: token '\\udc00' holds a lone surrogate (not a character)", "predict", {"in.jsonl": b'{"tokens": ["\\udc00"]}\n'}),
    Case("predict-joined-bom", "text input of two files joined with their byte-order marks", [*PREDICT], "{d}/in.txt:2: a byte-order mark (U+FEFF) starts this line: files joined with their marks? Remove it", "predict",
         {"in.txt": b"\xef\xbb\xbfAlice\n\xef\xbb\xbfBob\n"}),
    Case("predict-input-directory", "`--input` naming a directory", [*ADAPTER, "--input", "{d}"], "{d}: is a directory, expected a data file", "predict"),
    Case("predict-output-is-input", "`--output` naming the `--input` file", [*PREDICT, "--output", "{d}/in.txt"], "--input {d}/in.txt is also the output {d}/in.txt, which would overwrite it; choose another --output",
         "predict", IN_TXT),
    Case("predict-output-in-adapter", "`--output` inside the `--adapter` directory",
         [*ADAPTER, "--input", "{d}/in.txt", "--output", "{adapter}/config.json"], "the output {adapter}/config.json lies inside --adapter {adapter}, which it would change; choose another --output", "predict", IN_TXT),
    Case("predict-conll-docstart-word", "`--output-format conll` with a word `-DOCSTART-`",
         [*ADAPTER, "--input", "{d}/in.jsonl", "--output-format", "conll"], "--output-format conll: word 2 of input 1 ('-DOCSTART-') is the -DOCSTART- marker, which a CoNLL line cannot hold; use --output-format jsonl", "predict",
         {"in.jsonl": _jsonl({"tokens": ["x", "-DOCSTART-"]})}),
    Case("predict-conll-space-word", "`--output-format conll` with a word ending in a space",
         [*ADAPTER, "--input", "{d}/in.jsonl", "--output-format", "conll"], "--output-format conll: word 1 of input 1 ('x ') begins or ends with a space, which a CoNLL line cannot hold; use --output-format jsonl", "predict",
         {"in.jsonl": _jsonl({"tokens": ["x "]})}),
    Case("predict-base-missing", "`--base-model` naming a directory that does not exist",
         [*PREDICT, "--base-model", "{d}/gone"], "{d}/gone: model directory not found", "predict", IN_TXT),
    # ------------------------------------------------------------------ artifacts whose redundant facts disagree
    Case("artifact-label2id", "config.json whose `label2id` disagrees with `id2label`", [*PREDICT_COPY], "{d}/adapter/config.json: label2id disagrees with id2label ('O': 2); the label maps must match (was config.json edited?)", "predict",
         IN_TXT, _adapter_copy(_edit_json("config.json", lambda c: c["label2id"].update({"O": 2})))),
    Case("artifact-label-twice", "config.json giving one tag two ids", [*PREDICT_COPY], "{d}/adapter/config.json: id2label gives the tag 'O' two ids; each tag needs one", "predict", IN_TXT,
         _adapter_copy(_edit_json("config.json", lambda c: c.update(id2label={"0": "O", "1": "O", "2": "B-PER"},
                                                                     label2id=None)))),
    Case("artifact-id-keys", "config.json whose `id2label` keys are not integers", [*PREDICT_COPY], "{d}/adapter/config.json: id2label keys must be integers", "predict",
         IN_TXT, _adapter_copy(_edit_json("config.json", lambda c: c.update(id2label={"a": "O", "b": "B-PER"})))),
    Case("artifact-id-gap", "config.json whose `id2label` skips an id", [*PREDICT_COPY], "{d}/adapter/config.json: id2label must map 0..N-1 to tags", "predict", IN_TXT,
         _adapter_copy(_edit_json("config.json", lambda c: c.update(id2label={"0": "O", "2": "B-PER"})))),
    Case("artifact-newer-format", "peftner.json of a newer format", [*PREDICT_COPY], "{d}/adapter/peftner.json: written by a newer peftner (format 99, this one reads 1); upgrade peftner", "predict", IN_TXT,
         _adapter_copy(_edit_json("peftner.json", lambda m: m.update(format_version=99)))),
    Case("artifact-not-peft", "peftner.json saying `is_peft: false` next to adapter_config.json", [*PREDICT_COPY],
         "{d}/adapter: peftner.json says the directory holds no PEFT adapter but it has adapter_config.json; the files come from different runs", "predict", IN_TXT, _adapter_copy(_edit_json("peftner.json", lambda m: m.update(is_peft=False)))),
    Case("artifact-scheme", "peftner.json saying IOB2 while config.json has an `S-` label", [*PREDICT_COPY], "{d}/adapter: peftner.json says the tags are IOB2 but config.json has the label 'S-PER'; the files come from different runs",
         "predict", IN_TXT, _adapter_copy(_edit_json("config.json", _rename_label("B-PER", "S-PER")))),
    Case("artifact-metadata-json", "peftner.json that is not JSON", [*PREDICT_COPY], "{d}/adapter/peftner.json: could not read JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))", "predict", IN_TXT,
         _adapter_copy(lambda a: (a / "peftner.json").write_text("{oops"))),
    Case("artifact-relative-base", "an adapter whose base was recorded as a relative path missing here",
         [*PREDICT_COPY], "{d}/adapter: the base model was recorded as ./gone/model, a path relative to the folder training ran in, and is not found from the working directory; pass it explicitly (--base-model)", "predict", IN_TXT,
         _adapter_copy(_edit_json("peftner.json", lambda m: m.update(base_model="./gone/model",
                                                                     base_model_embedded=False)))),
    Case("artifact-absolute-base", "an adapter whose recorded absolute base path is missing here", [*PREDICT_COPY],
         "{d}/adapter: the base model /nonexistent/model recorded at training time does not exist on this machine; pass it explicitly (--base-model)", "predict", IN_TXT, _adapter_copy(_edit_json("peftner.json", lambda m: m.update(
             base_model="/nonexistent/model", base_model_embedded=False)))),
    # ------------------------------------------------------------------ peftner export
    Case("export-over-adapter", "`peftner export --output` naming the adapter",
         ["export", "--adapter", "{d}/adapter", "--output", "{d}/adapter", "--merge"], "--adapter {d}/adapter is also the output {d}/adapter, which would overwrite it; choose another --output", "export",
         setup=_adapter_copy(lambda a: None)),
    Case("export-into-adapter", "`peftner export --output` inside the adapter",
         ["export", "--adapter", "{d}/adapter", "--output", "{d}/adapter/merged", "--merge"], "the output {d}/adapter/merged lies inside --adapter {d}/adapter, which it would change; choose another --output", "export",
         setup=_adapter_copy(lambda a: None)),
    Case("export-over-base", "`peftner export --output` naming the base model (with `--overwrite`)",
         ["export", "--adapter", "{adapter}", "--output", "{d}/base", "--merge", "--base-model", "{d}/base",
          "--overwrite"], "--base-model {d}/base is also the output {d}/base, which would overwrite it; choose another --output", "export", setup=_base_copy),
    Case("export-without-merge", "`peftner export` of a PEFT adapter without `--merge`",
         ["export", "--adapter", "{adapter}", "--output", "{d}/merged"], "{adapter}: a PEFT adapter becomes a plain model only by merging it into its base: pass --merge", "export"),
    Case("export-not-empty", "`peftner export --output` naming a non-empty folder",
         ["export", "--adapter", "{adapter}", "--output", "{d}", "--merge"], "{d}: directory exists and is not empty (choose a new --output)", "export", IN_TXT),
    # ------------------------------------------------------------------ peftner tune / compare: flags up front, storages
    Case("tune-extra-typo", "`peftner tune --extra` with a misspelt recipe flag",
         ["tune", "lora", "--results-dir", "{d}/res", "--extra", "--lerning-rate 0.1"], "--extra (recipe flags of lora): unrecognized arguments: --lerning-rate 0.1", "tune"),
    Case("tune-extra-value", "`peftner tune --extra` with a bad value", ["tune", "lora", "--results-dir", "{d}/res",
                                                                       "--extra", "--batch-size 0"], "--extra (recipe flags of lora): --batch-size must be at least 1, got 0", "tune"),
    Case("tune-extra-quote", "`peftner tune --extra` with an unbalanced quote",
         ["tune", "lora", "--results-dir", "{d}/res", "--extra", "--model 'x"], "--extra \"--model 'x\": No closing quotation", "tune"),
    Case("tune-extra-searched", "`peftner tune --extra` setting a flag the search varies",
         ["tune", "lora", "--results-dir", "{d}/res", "--extra", "--learning-rate 0.1"], "--extra sets --learning-rate, which this command sets for every run itself; drop it from --extra", "tune"),
    Case("tune-extra-seed", "`peftner tune --extra --seed`", ["tune", "lora", "--results-dir", "{d}/res", "--extra",
                                                             "--seed 5"], "--extra sets --seed, which this command sets for every run itself; drop it from --extra", "tune"),
    Case("tune-extra-output-dir", "`peftner tune --extra --output-dir`",
         ["tune", "lora", "--results-dir", "{d}/res", "--extra", "--output-dir {d}/x"], "--extra sets --output-dir, which this command sets for every run itself; drop it from --extra", "tune"),
    Case("tune-extra-budget", "`peftner tune --budget-steps 10 --extra '--eval-steps 3'`",
         ["tune", "lora", "--results-dir", "{d}/res", "--budget-steps", "10", "--extra", "--eval-steps 3"], "--extra sets --eval-steps, which this command sets for every run itself; drop it from --extra", "tune"),
    Case("tune-extra-missing-model", "`peftner tune --extra '--model DIR'` naming no directory",
         ["tune", "lora", "--results-dir", "{d}/res", "--extra", "--model {d}/gone"], "--extra (recipe flags of lora): {d}/gone: model directory not found", "tune"),
    Case("tune-journal-damaged", "`peftner tune --storage` journal damaged before its end",
         ["tune", "lora", "--results-dir", "{d}/res", "--storage", "{d}/s.journal"], "{d}/s.journal:2: damaged journal record (not JSON); restore the journal from a copy, or move it aside to start a new study", "tune",
         setup=_journal(b'{"op_code":0,"worker_id":"w","study_name":"x","directions":[2]}\ngarbage\n'
                        b'{"op_code":0,"worker_id":"w","study_name":"y","directions":[2]}\n')),
    Case("tune-journal-foreign", "`peftner tune --storage` naming JSON Lines that are not a journal",
         ["tune", "lora", "--results-dir", "{d}/res", "--storage", "{d}/s.journal", "--status"], "--storage {d}/s.journal: not an Optuna journal (a record lacks the key 'op_code'); move it aside or name another --storage", "tune",
         setup=_journal(b'{"tokens": ["a"], "tags": ["O"]}\n')),
    Case("tune-storage-directory", "`peftner tune --storage` naming a directory",
         ["tune", "lora", "--results-dir", "{d}/res", "--storage", "{d}"], "--storage {d}: is a directory, expected a journal file (or sqlite:///FILE.db)", "tune"),
    Case("tune-storage-scheme", "`peftner tune --storage` with an unknown URL scheme",
         ["tune", "lora", "--results-dir", "{d}/res", "--storage", "redis://host/0"], "--storage redis://host/0: unknown scheme 'redis' (use sqlite:///FILE, an RDB URL or a journal file path)", "tune"),
    Case("tune-status-no-study", "`peftner tune --status` before any search",
         ["tune", "lora", "--results-dir", "{d}/res", "--status"], "no study named tune-lora in this storage yet (start one with peftner tune)", "tune"),
    Case("tune-other-flags", "`peftner tune` continuing a study searched with other recipe flags",
         ["tune", "lora", "--results-dir", "{d}/res", "--storage", "{d}/s.journal", "--budget-epochs", "1"], "study tune-lora was searched with the recipe flags '--epochs 9' and this command gives '--budget-epochs 1': their trials would not compare; give the same --extra and budget, or another --storage (or --results-dir)",
         "tune", setup=_study_with_flags),
    Case("tune-other-space", "`peftner tune` continuing a study searched over another search space (peftner changed it)",
         ["tune", "lora", "--results-dir", "{d}/res", "--storage", "{d}/s.journal", "--budget-epochs", "1"], "study tune-lora was searched over another space than lora's now (learning_rate: LogUniform(low=1.0, high=2.0) -> LogUniform(low=0.0001, high=0.005)): its trials would not compare; start the study over with `optuna delete-study --storage {d}/s.journal --study-name tune-lora`, or give another --storage", "tune",
         setup=_study_of_another_space),
    Case("compare-extra-other-method", "`peftner compare --extra` with a flag one of the methods lacks",
         ["compare", "--methods", "lora,full", "--results-dir", "{d}/res", "--extra", "--lora-alpha 8"], "--extra (recipe flags of full): unrecognized arguments: --lora-alpha 8", "compare"),
    Case("compare-extra-seed", "`peftner compare --extra --seed`",
         ["compare", "--methods", "lora", "--results-dir", "{d}/res", "--extra", "--seed 1"], "--extra sets --seed, which this command sets for every run itself; drop it from --extra", "compare"),
    Case("compare-extra-steps", "`peftner compare --steps 10 --extra '--max-steps 5'`",
         ["compare", "--methods", "lora", "--results-dir", "{d}/res", "--steps", "10", "--extra", "--max-steps 5"],
         "--extra sets --max-steps, which this command sets for every run itself; drop it from --extra", "compare"),
    Case("compare-cached-other-settings", "`peftner compare` over a finished run made with other settings",
         ["compare", "--methods", "lora", "--seeds", "1", "--epochs", "1", "--model", "{model}", "--train-file",
          "{train}", "--validation-file", "{train}", "--test-file", "{train}", "--results-dir", "{d}/res", "--extra",
          "--learning-rate 0.5"],
         "{d}/res/files_e1/runs/lora/size-all/seed-42/metrics.json: this finished run had other settings "
         "(learning_rate: 0.25 -> 0.5); give the new settings another --results-dir (or --name), or delete that run "
         "folder to run it again", "compare", setup=_cached_run),
    Case("compare-cached-unreadable", "`peftner compare` over a finished run whose metrics.json is not JSON",
         ["compare", "--methods", "lora", "--seeds", "1", "--epochs", "1", "--model", "{model}", "--train-file",
          "{train}", "--validation-file", "{train}", "--test-file", "{train}", "--results-dir", "{d}/res"],
         "{d}/res/files_e1/runs/lora/size-all/seed-42/metrics.json: unreadable (Expecting value: line 1 column 1 "
         "(char 0)); delete that run folder to run it again", "compare",
         setup=lambda d, mp, fx: (d / "res/files_e1/runs/lora/size-all/seed-42").mkdir(parents=True) or
         (d / "res/files_e1/runs/lora/size-all/seed-42/metrics.json").write_text("")),
    Case("compare-unknown-method", "`peftner compare --methods lora,lorra`",
         ["compare", "--methods", "lora,lorra", "--results-dir", "{d}/res"], "unknown method 'lorra' (did you mean 'lora'?); choose from " + ", ".join(METHODS), "compare"),
]


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory, tiny_model):
    """A good training file and a trained tiny LoRA adapter, shared by the cases."""
    from safetensors import safe_open

    from peftner.recipe import main

    root = tmp_path_factory.mktemp("bad-inputs")
    train = write_conll(root / "train.conll", memorisable_sentences(8))
    main("lora", ["--model", str(tiny_model), "--train-file", str(train), "--validation-file", str(train),
                  "--test-file", str(train), "--output-dir", str(root / "run"), "--epochs", "1",
                  "--keep-checkpoints", "0"])
    main("full", ["--model", str(tiny_model), "--train-file", str(train), "--validation-file", str(train),
                  "--test-file", str(train), "--output-dir", str(root / "full"), "--epochs", "1",
                  "--keep-checkpoints", "0"])
    adapter = root / "run" / "adapter"
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as handle:
        keys = sorted(handle.keys())
    return {"train": train, "model": tiny_model, "adapter": adapter, "full": root / "full" / "adapter", "nan_key": keys[0],
            "head_key": sorted(k for k in keys if "classifier" in k)[0]}


def _fill(text: str, d: Path, fx: dict) -> str:
    return (text.replace("{d}", str(d)).replace("{adapter}", str(fx["adapter"]))
            .replace("{nan_key}", fx["nan_key"]).replace("{head_key}", fx["head_key"])
            .replace("{model}", str(fx["model"])).replace("{train}", str(fx["train"])))


def snapshot(d: Path) -> dict:
    """Every file under ``d`` with its bytes: a refused command must leave them all as they were."""
    def read(path):
        with open(path, "rb") as handle:  # not Path.read_bytes, which a case may make fail
            return handle.read()
    return {p.relative_to(d): read(p) for p in sorted(d.rglob("*")) if p.is_file() and
            not p.name.startswith(".write-test-")}


def run_case(case: Case, d: Path, fx: dict, monkeypatch, capsys) -> tuple[int, str, str]:
    from peftner import cli
    from peftner.models import loading
    from peftner.recipe import main

    for name, content in case.files.items():
        (d / name).write_bytes(content)
    if case.setup:
        case.setup(d, monkeypatch, fx)
    monkeypatch.setattr(sys.modules[__name__], "BEFORE", snapshot(d), raising=False)
    if not case.model_loads:
        def no_model(*args, **kwargs):
            raise AssertionError("the model was loaded before the error")
        monkeypatch.setattr(loading, "load_token_classifier", no_model)
    argv = [_fill(a, d, fx) for a in case.argv]
    with pytest.raises(SystemExit) as exit_info:
        if case.command == "train":
            main(case.method, ["--model", str(fx["model"]), "--train-file", str(fx["train"]), "--validation-file",
                          str(fx["train"]), "--test-file", str(fx["train"]), "--output-dir", str(d / "out"),
                          "--epochs", "1", "--batch-size", "8", *argv])
        else:
            cli.main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, fixtures, tmp_path, monkeypatch, capsys):
    code, out, err = run_case(case, tmp_path, fixtures, monkeypatch, capsys)
    assert code == 2
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("peftner: error:")]
    assert errors == [f"peftner: error: {_fill(case.message, tmp_path, fixtures)}"], err
    assert err.strip().splitlines()[-1] == errors[0]
    # nothing lost or changed: every file the case had is still there, unchanged, and no run output appeared
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in BEFORE} == BEFORE
    assert not any(k.parts[:2] in (("out", "metrics.json"), ("out", "adapter")) for k in set(after) - set(BEFORE))
    assert not out.strip() or case.command == "train"  # predict/export: no partial output


def test_the_table_has_at_least_200_distinct_cases():
    assert len(CASES) >= 200 and len({c.id for c in CASES}) == len(CASES)
    assert len({c.message for c in CASES}) >= 190  # not one message 200 times


def test_every_numeric_setting_declares_its_limits():
    """New fields cannot skip validation: each int/float setting states its range next to its help."""
    import dataclasses
    import typing

    from peftner.config import TrainConfig
    from peftner.methods import METHODS
    from peftner.validation import _field_type

    classes = {TrainConfig, *(m.config_cls for m in METHODS.values())}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in hints and _field_type(cls, f.name)[0] in (int, float):
                assert {"min", "max", "above", "below"} & set(f.metadata), f"{cls.__name__}.{f.name}"


def doc_table() -> str:
    """The Markdown table of docs/reliability.md, generated from CASES."""
    rows = []
    for case in CASES:
        message = (case.message.replace("{d}/", "").replace("{d}", "DIR").replace("{nan_key}", "NAME")
                   .replace("{head_key}", "NAME")
                   .replace("{model}", "MODEL").replace("|", "\\|"))
        rows.append([case.what, case.method if case.command == "train" else case.command, f"`{message}`"])
    columns = dict.fromkeys(["input", "recipe or command", "message (after `peftner: error: `; exit status 2)"], "l")
    return "\n".join(markdown_table(columns, rows))


def test_reliability_doc_lists_every_case():
    text = DOC.read_text(encoding="utf-8")
    assert BEGIN in text and END in text
    current = text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")
    assert current == doc_table(), "docs/reliability.md is stale: run python tests/test_bad_inputs.py"


if __name__ == "__main__":
    text = DOC.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    DOC.write_text(head + BEGIN + "\n" + doc_table() + "\n" + END + rest.split(END, 1)[1], encoding="utf-8")
    print(f"wrote {len(CASES)} cases to {DOC}")
