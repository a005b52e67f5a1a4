"""One run, end to end: :func:`run` is :func:`check_architecture` (on the model config alone, before
any data is read) and five named stages — :func:`load_data` → :func:`build_model` →
``train`` (:mod:`peftner.training.loop`) → :func:`score_test` → :func:`save_run` (adapter directory,
metrics.json, summary). Every stage takes the one :class:`Run` (what was asked, and what the earlier
stages produced), like a torchtune recipe's state.

Every recipe in ``recipes/`` is ``main("<method>")``: the method is the only thing that differs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import sys
import tempfile
from pathlib import Path

from dataclasses import dataclass
from typing import Any

from peftner.config import TrainConfig, config_to_dict, default_model, parse_args
from peftner.errors import INTERRUPTED_STATUS, PeftnerError, interrupt_on_sigterm, interrupted_line
from peftner.methods import Method, count_parameters, get_method
from peftner.report import RunMetrics, describe_scheme, format_summary

logger = logging.getLogger("peftner")
PREDICTIONS_FILE = "test_predictions.conll"  # token, gold tag, predicted tag of every test word


OUTPUT_FILES = ("metrics.json", PREDICTIONS_FILE)  # besides the adapter/ and checkpoints/ folders


def _check_output_dir(path: Path, cfg: TrainConfig | None = None):
    """Before any work: the output directory is writable, what the run will write there is peftner's
    to replace, and no input of the run lies where an output goes (the run would overwrite it)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as err:
        raise PeftnerError(f"{path}: output directory is not writable ({err.strerror or err})") from None
    for name in ("checkpoints", "adapter"):
        if (path / name).exists() and not (path / name).is_dir():
            raise PeftnerError(f"{path / name}: is a file, but the run writes its {name} folder there; move it "
                               "or choose another --output-dir")
    for name in OUTPUT_FILES:
        if (path / name).is_dir():
            raise PeftnerError(f"{path / name}: is a directory, but the run writes its {name} there; move it or "
                               "choose another --output-dir")
    _check_adapter_folder(path / "adapter")
    if cfg is None:
        return
    from peftner.integrity import refuse_clobber

    inputs = {"--train-file": cfg.train_file, "--validation-file": cfg.validation_file,
              "--test-file": cfg.test_file, "--init-adapter": cfg.init_adapter}
    for output in [path / "adapter", *(path / name for name in OUTPUT_FILES)]:
        refuse_clobber(output, inputs, "copy it elsewhere first, or choose another --output-dir")


def _check_adapter_folder(adapter: Path):
    """OUTPUT_DIR/adapter is replaced by every run: refuse when it holds files peftner did not write
    (no peftner.json, and no copy set aside by an interrupted save of peftner's)."""
    from peftner.integrity import previous_copy
    from peftner.reuse.artifact import METADATA_FILE

    if adapter.is_dir() and any(adapter.iterdir()) and not (adapter / METADATA_FILE).is_file() \
            and not previous_copy(adapter).exists():
        raise PeftnerError(f"{adapter}: holds files peftner did not write (no {METADATA_FILE}), and the run "
                           "replaces this folder; move them or choose another --output-dir")


@dataclass
class Run:
    """One run's state: what was asked (method, its config, the shared config, the command line), the
    accelerator, and each stage's result as it comes (``facts``, ``data``, ``built``)."""

    method: Method
    method_config: Any
    cfg: TrainConfig
    accelerator: Any
    command: str | None = None
    facts: Any = None  # peftner.models.facts.ModelFacts from the config alone, or None
    data: Data | None = None
    built: Built | None = None


@dataclass
class Data:
    """Stage 1's result: the corpus, its label schema and where the run starts from."""

    corpus: Any
    schema: Any  # peftner.data.labels.LabelSchema (extended by --init-adapter's labels)
    init: Any  # peftner.reuse.continued.InitAdapter or None
    model_name: str
    scorer: Any  # peftner.training.loop.Scorer


@dataclass
class Built:
    """Stage 2's result: the model to train, its tokenizer, the encoded splits and the parameter counts."""

    model: Any
    tokenizer: Any
    train_features: list
    dev_set: Any  # peftner.training.loop.EvalSet
    test_set: Any
    trainable: int
    total: int
    head: str = "new"  # what became of a head the model had: peftner.models.loading.load_token_classifier


def check_architecture(run: Run) -> None:
    """Stage 0: the method's architecture defaults and refusals, from the model's config alone.

    Sets ``run.facts`` and fills the defaults of ``run.method_config`` (``target_modules`` etc.), so the
    refusal of a method that cannot apply comes before any data is read. Continued training from
    ``--init-adapter`` without ``--model``, or a config that cannot be read, is checked when the model
    is built.
    """
    from peftner.models.facts import inspect_model

    cfg, method = run.cfg, run.method
    if cfg.init_adapter and not cfg.model:
        return
    try:
        run.facts = inspect_model(cfg.model or default_model(), cfg.trust_remote_code)
    except PeftnerError:
        return  # an unreadable config: loading the model reports why
    facts = run.facts
    flag = "--bidirectional" if cfg.bidirectional else "--bidirectional-from" if cfg.bidirectional_from else None
    if flag and not facts.decoder:
        raise PeftnerError(f"{flag}: this {facts.model_type} model has no causal attention to lift "
                           "(it already attends in both directions); the flag is for decoder LLMs")
    if cfg.bidirectional and cfg.bidirectional_from:
        raise PeftnerError("--bidirectional lifts the causal mask in every layer, --bidirectional-from K from layer K "
                           "on: pass one of them")
    if cfg.bidirectional_from and facts.num_layers and cfg.bidirectional_from >= facts.num_layers:
        raise PeftnerError(f"--bidirectional-from must be below the model's {facts.num_layers} layers (0-based; "
                           f"--bidirectional for every layer), got {cfg.bidirectional_from}")
    if method.for_model is not None:
        run.method_config = method.resolve(run.method_config, run.facts)


def load_data(run: Run) -> Data:
    """Stage 1: read and check the three splits; the schema gives the head its labels."""
    from peftner.data import load_corpus
    from peftner.models.loading import resolved_model_name
    from peftner.reuse import prepare_init_adapter
    from peftner.training.loop import Scorer

    cfg = run.cfg
    init = prepare_init_adapter(cfg.init_adapter, run.method) if cfg.init_adapter else None
    corpus = load_corpus(cfg.dataset, cfg.train_file, cfg.validation_file, cfg.test_file,
                         max_train_samples=cfg.max_train_samples, seed=cfg.seed,
                         refuse_invalid_transitions=cfg.refuse_invalid_transitions,
                         allow_unseen_tags=cfg.allow_unseen_tags, tag_scheme=cfg.tag_scheme)
    schema = init.extend_schema(corpus.schema) if init else corpus.schema  # old label ids kept
    if cfg.scheme_f1 and schema.strict_scheme is None:
        raise PeftnerError("--scheme-f1 scores entities by their tag scheme's rules, but these tags follow no "
                           "scheme (scored by token accuracy); drop --scheme-f1")
    f1_scheme = schema.strict_scheme if cfg.scheme_f1 else None
    model_name = resolved_model_name(cfg.model or (init.base_model if init else None) or default_model())
    run.data = Data(corpus, schema, init, model_name, Scorer(schema.id2label, schema.metric, f1_scheme, schema.scheme))
    return run.data


def build_model(run: Run) -> Built:
    """Stage 2: load the backbone with a fresh head, apply the method, encode the splits for it."""
    from peftner.data import encode_sentences
    from peftner.data.alignment import window_budget
    from peftner.methods.base import window_length
    from peftner.models.decoders import make_bidirectional
    from peftner.models.loading import load_token_classifier, load_tokenizer, never_quantize_head
    from peftner.training.loop import EvalSet

    method, method_config, cfg, data, accelerator = run.method, run.method_config, run.cfg, run.data, run.accelerator
    tokenizer = load_tokenizer(data.model_name, cfg.trust_remote_code)
    if cfg.max_length is not None:
        window_budget(tokenizer, cfg.max_length)  # too small for the special tokens: say so before the model loads
    load_kwargs = method.load_kwargs(method_config) if method.load_kwargs else {}
    if "quantization_config" in load_kwargs and accelerator.device.type == "cuda":
        # Quantized weights cannot be moved after loading: place them on this process's GPU.
        load_kwargs.setdefault("device_map", {"": accelerator.device})
    model, head = load_token_classifier(data.model_name, data.schema.id2label, cfg.trust_remote_code, with_head=True,
                                        **never_quantize_head(load_kwargs, run.facts))
    if (cfg.bidirectional or cfg.bidirectional_from) and make_bidirectional(model, cfg.bidirectional_from or 0) == 0:
        raise PeftnerError(f"--bidirectional: this {model.config.model_type} model has no causal attention to lift")
    model = method.apply(model, method_config)
    max_length = window_length(tokenizer, model, cfg.max_length)  # what Tagger recomputes on reload
    if data.init:
        data.init.load_into(model, len(data.schema.labels))
        head = f"from --init-adapter {cfg.init_adapter}"
    trainable, total = count_parameters(model)

    def encode(sentences):
        return encode_sentences([s.tokens for s in sentences], [s.tags for s in sentences], tokenizer,
                                data.schema.label2id, max_length, cfg.label_all_subwords)

    corpus, schema = data.corpus, data.schema
    built = run.built = Built(model, tokenizer, encode(corpus.train),
                  EvalSet(encode(corpus.validation), [s.tags for s in corpus.validation]),
                  EvalSet(encode(corpus.test), [s.tags for s in corpus.test]), trainable, total, head)
    accelerator.print(f"{corpus.name}: {len(corpus.train)} train / {len(corpus.validation)} dev / "
                      f"{len(corpus.test)} test sentences, {len(schema.labels)} tags ({describe_scheme(schema.scheme, schema.source_scheme)}), "
                      f"{len(built.train_features)} training windows of at most {max_length} subwords")
    accelerator.print(f"method {method.name}: {trainable:,} trainable of {total:,} parameters "
                      f"({100 * trainable / total:.3f}%)")
    if head != "new":
        accelerator.print(f"classification head of {data.model_name}: {head}")
    return built


def score_test(run: Run, model) -> tuple[dict, list[list[str]]]:
    """Stage 4: score the test split once, with the best dev state; returns (scores, predicted tags)."""
    from peftner.training.loop import PaddingCollator, evaluate_split, make_eval_loader

    built, accelerator = run.built, run.accelerator
    test_loader = accelerator.prepare(make_eval_loader(built.test_set, run.cfg.eval_batch_size,
                                                       PaddingCollator(built.tokenizer.pad_token_id)))
    return evaluate_split(model, test_loader, accelerator, built.test_set, run.data.scorer)


def save_run(run: Run, model, result, test: tuple[dict, list[list[str]]]) -> RunMetrics:
    """Stage 5 (main process): the adapter directory, the test predictions, metrics.json and the summary."""
    from peftner.integrity import drop_previous, set_aside
    from peftner.models.loading import backbone_bytes, saved_base_config
    from peftner.models.packaged import read_provenance
    from peftner.report import library_versions, machine_description, peak_memory_mb, weights_bytes
    from peftner.reuse import write_artifacts
    from peftner.reuse.partial import save_trained
    from peftner.reuse.text import write_tagged_conll

    method, method_config, cfg, accelerator = run.method, run.method_config, run.cfg, run.accelerator
    built, data = run.built, run.data
    test_scores, test_predicted = test
    output_dir = Path(cfg.output_dir)
    adapter_dir = output_dir / "adapter"
    set_aside(adapter_dir)  # an earlier run's adapter survives a failed save (disk full): see main()
    unwrapped = accelerator.unwrap_model(model)
    if method.saves_trained_only:
        save_trained(unwrapped, adapter_dir)  # head / BitFit: the trained tensors, not the whole model
    else:
        unwrapped.save_pretrained(adapter_dir, safe_serialization=True)
    saved_base_config(unwrapped).save_pretrained(adapter_dir)  # config.json: the label maps, written once
    built.tokenizer.save_pretrained(adapter_dir)
    write_tagged_conll(output_dir / PREDICTIONS_FILE, [s.tokens for s in data.corpus.test], built.test_set.gold,
                       test_predicted)  # what test_f1 scored, word by word
    corpus = data.corpus
    metrics = RunMetrics(
        method=method.name, model=data.model_name, backbone=read_provenance(data.model_name),
        dataset=corpus.name if corpus.name != "files" else cfg.train_file,
        seed=cfg.seed, epochs=result.history[-1]["epoch"] if result.history else cfg.epochs,
        metric=data.schema.metric, scheme=data.schema.scheme, source_scheme=data.schema.source_scheme,
        test_f1=float(test_scores["f1"]), test_precision=float(test_scores["precision"]),
        test_recall=float(test_scores["recall"]), test_accuracy=float(test_scores["accuracy"]),
        per_type=test_scores["per_type"], best_dev_f1=float(result.best_dev_f1),
        best_epoch=result.best_epoch, history=result.history,
        head=built.head, trainable_params=int(built.trainable), total_params=int(built.total),
        trainable_percent=100.0 * built.trainable / built.total,
        adapter_bytes=weights_bytes(adapter_dir), backbone_bytes=int(backbone_bytes(unwrapped)),
        train_seconds=float(result.train_seconds), train_tokens=int(result.train_tokens),
        train_tokens_per_second=result.train_tokens / max(result.train_seconds, 1e-9),
        optimizer_steps=result.optimizer_steps, head_standardization=result.head_standardization,
        peak_memory_mb=float(peak_memory_mb(accelerator.device)),
        num_processes=accelerator.num_processes, device=str(accelerator.device), machine=machine_description(),
        mixed_precision=cfg.mixed_precision, train_sentences=len(corpus.train),
        repaired_transitions=corpus.repaired_transitions, config=config_to_dict(cfg),
        method_config=config_to_dict(method_config), command=run.command, versions=library_versions(),
        output_dir=str(output_dir))
    write_artifacts(adapter_dir, method=method, model=unwrapped, base_model=data.model_name, schema=data.schema,
                    metrics=metrics, init_adapter=cfg.init_adapter)  # peftner.json + README.md
    metrics.write(output_dir / "metrics.json")
    drop_previous(adapter_dir)
    print(format_summary(metrics), flush=True)
    return metrics


def run(method: Method, cfg: TrainConfig, method_config, command: str | None = None,
        callbacks=(), evaluate_test: bool = True) -> RunMetrics | dict | None:
    """Train and evaluate one method: load data → build model → train → test → save.

    Returns the run's :class:`~peftner.report.RunMetrics` (also written to metrics.json) on the main
    process, None on the others. ``callbacks``: hooks into the training loop
    (:mod:`peftner.training.callbacks`). ``evaluate_test=False`` (a tuning trial: the test split must
    stay unseen) stops after training and returns the dev results as a dict, writing nothing.
    """
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from peftner.integrity import exclusive_output
    from peftner.trackers import Tracking
    from peftner.training.loop import train

    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    _check_output_dir(Path(cfg.output_dir), cfg)
    tracking = Tracking.from_config(cfg, method.name, method_config)  # --report-to checked before any work
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=cfg.cpu,
                              gradient_accumulation_steps=cfg.gradient_accumulation_steps,
                              **tracking.accelerator_kwargs())
    with exclusive_output(cfg.output_dir) if accelerator.is_main_process else contextlib.nullcontext():
        tracker = tracking.start(accelerator)
        set_seed(cfg.seed)

        state = Run(method, method_config, cfg, accelerator, command)
        check_architecture(state)
        data = load_data(state)
        built = build_model(state)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        method_config = state.method_config  # resolved for this architecture
        initialize = ((lambda model, batches: method.initialize(model, method_config, batches))
                      if method.initialize else None)
        model, result = train(built.model, accelerator, built.train_features, built.dev_set, data.scorer, cfg,
                              built.tokenizer.pad_token_id, callbacks=[*callbacks, tracker] if tracker else callbacks,
                              identity={"method": method.name, "method_config": config_to_dict(method_config)},
                              initialize=initialize, fresh_head=built.head == "new")
        if initialize is not None:  # the initialisation may change the adapter's shapes (EVA's ranks)
            built.trainable, built.total = count_parameters(accelerator.unwrap_model(model))
        if method.as_saved is not None:  # scored as it is saved and reloaded
            model = method.as_saved(accelerator.unwrap_model(model), method_config)
        if not evaluate_test:
            accelerator.end_training()
            return {"best_dev_f1": float(result.best_dev_f1), "best_epoch": result.best_epoch, "history": result.history,
                    "trainable_params": int(built.trainable), "total_params": int(built.total),
                    "train_seconds": float(result.train_seconds), "optimizer_steps": result.optimizer_steps}
        test = score_test(state, model)
        metrics = None
        if accelerator.is_main_process:
            metrics = save_run(state, model, result, test)
            if tracker:
                tracker.on_run_end(metrics)
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return metrics


def _quiet_libraries():
    import transformers

    transformers.logging.set_verbosity_error()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(method_name: str, argv: list[str] | None = None, prog: str | None = None) -> RunMetrics | None:
    """Entry point of every recipe: parse flags, run, and turn user errors into one-line messages.
    ``prog`` is how the run was started, for the recorded command (default: the script's name)."""
    argv = sys.argv[1:] if argv is None else argv
    cfg = None
    interrupt_on_sigterm()
    try:
        method = get_method(method_name)
        cfg, method_config = parse_args(method, argv)
        _quiet_libraries()
        command = " ".join([prog or shlex.quote(Path(sys.argv[0]).name), *(shlex.quote(a) for a in argv)])
        return run(method, cfg, method_config, command=command)
    except (PeftnerError, OSError) as err:  # OSError: disk full, read-only, permissions while saving
        if cfg is not None:
            from peftner.integrity import restore_previous

            restore_previous(Path(cfg.output_dir) / "adapter")  # a half-written adapter never replaces a good one
        line = err if isinstance(err, PeftnerError) else _os_error_line(err, cfg)
        print(f"peftner: error: {line}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM, in training, a dev evaluation or the save
        if cfg is not None:
            from peftner.integrity import restore_previous

            restore_previous(Path(cfg.output_dir) / "adapter")
        print(interrupted_line(err, _resume_advice(cfg)), file=sys.stderr, flush=True)
        raise SystemExit(INTERRUPTED_STATUS) from None


def _resume_advice(cfg) -> str:
    from peftner.training.checkpoint import complete_checkpoints

    if cfg is None or not cfg.keep_checkpoints:
        return ""
    kept = complete_checkpoints(Path(cfg.output_dir) / "checkpoints")
    return f"the last checkpoint is {kept[-1]}: rerun with --resume to continue" if kept else \
        "no checkpoint had been written yet"


def _os_error_line(err: OSError, cfg) -> str:
    from peftner.integrity import os_error_message
    from peftner.training.checkpoint import complete_checkpoints

    line = os_error_message(err, cfg.output_dir if cfg else "")
    if cfg is None or not cfg.keep_checkpoints:
        return line
    kept = complete_checkpoints(Path(cfg.output_dir) / "checkpoints")
    return line + (f"; the last good checkpoint is {kept[-1]} (free space, then rerun with --resume)"
                   if kept else "; no checkpoint had been written yet")


def train_arguments(parser):
    """``peftner train METHOD [recipe flags]``: the recipe flags are parsed by the method's own parser."""
    from peftner.methods import METHODS

    parser.add_argument("method", choices=sorted(METHODS), help="fine-tuning method")
    parser.add_argument("recipe_args", nargs=argparse.REMAINDER, help="flags of the recipe (see --help of a method)")


def train_command(args) -> int:
    main(args.method, args.recipe_args, prog=f"peftner train {args.method}")
    return 0
