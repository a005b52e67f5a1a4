"""The table of bad inputs: each case asserts exit status 2 and the exact one-line message.

Cases run in-process through the recipe ``main()`` / ``peftner`` ``main()`` with argv. Unless a case
says otherwise, loading a model is made to fail the test, so the error provably comes before any
model loads. docs/reliability.md shows this table (``python tests/test_bad_inputs.py`` rewrites
it; ``test_reliability_doc_lists_every_case`` fails when it is stale).
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

DOC = Path(__file__).resolve().parent.parent / "docs" / "reliability.md"
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


def _no_cuda(d, monkeypatch, fx):
    import torch

    monkeypatch.setattr(torch.version, "cuda", None)  # a CPU-only build, whatever this machine has


def _binary_stdin(d, monkeypatch, fx):
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")))


ADAPTER = ["predict", "--adapter", "{adapter}"]
PREDICT = [*ADAPTER, "--input", "{d}/in.txt"]
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
    Case("unknown-flag", "an unknown flag", ["--epoch", "3", "--lorra-r", "4"], "unrecognized arguments: --lorra-r 4"),
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
            .replace("{model}", str(fx["model"])))


def run_case(case: Case, d: Path, fx: dict, monkeypatch, capsys) -> tuple[int, str, str]:
    from peftner import cli, modeling
    from peftner.recipe import main

    for name, content in case.files.items():
        (d / name).write_bytes(content)
    if case.setup:
        case.setup(d, monkeypatch, fx)
    if not case.model_loads:
        def no_model(*args, **kwargs):
            raise AssertionError("the model was loaded before the error")
        monkeypatch.setattr(modeling, "load_token_classifier", no_model)
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
    assert not (tmp_path / "out" / "metrics.json").exists() and not (tmp_path / "out" / "adapter").exists()
    assert not out.strip() or case.command == "train"  # predict/export: no partial output


def test_the_table_has_at_least_70_distinct_cases():
    assert len(CASES) >= 70 and len({c.id for c in CASES}) == len(CASES)
    assert len({c.message for c in CASES}) >= 70  # not one message 70 times


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
    rows = ["| input | recipe or command | message (after `peftner: error: `; exit status 2) |", "|---|---|---|"]
    for case in CASES:
        message = (case.message.replace("{d}/", "").replace("{d}", "DIR").replace("{nan_key}", "NAME")
                   .replace("{head_key}", "NAME")
                   .replace("{model}", "MODEL").replace("|", "\\|"))
        command = case.method if case.command == "train" else case.command
        rows.append(f"| {case.what} | {command} | `{message}` |")
    return "\n".join(rows)


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
