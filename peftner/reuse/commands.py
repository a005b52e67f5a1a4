"""``peftner predict`` and ``peftner export`` (registered in :mod:`peftner.cli`)."""

from __future__ import annotations

import json
import sys

from peftner.errors import PeftnerError
from peftner.reuse.precision import DEFAULT_CHECK_MARGIN, PRECISIONS, check_precision


def _quiet():
    import logging
    import os
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)  # library deprecation notices, not for users
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    logging.getLogger("peft").setLevel(logging.ERROR)


def predict_arguments(parser):
    parser.add_argument("--adapter", required=True, metavar="DIR",
                        help="OUTPUT_DIR/adapter of a run (PEFT adapter or full model), or an exported model")
    parser.add_argument("--input", required=True, metavar="FILE",
                        help="file to tag, or - for standard input")
    parser.add_argument("--format", choices=("text", "conll", "jsonl"), default=None,
                        help="input format (default: from the file suffix; text for -): text = one text per "
                             "line; conll = token in the first column, blank line between sentences; "
                             'jsonl = {"tokens": [...]} or {"text": "..."} per line')
    parser.add_argument("--output-format", choices=("jsonl", "conll"), default="jsonl",
                        help="jsonl: one object per input with tokens, tags, scores and entities; "
                             "conll: token<TAB>tag lines")
    parser.add_argument("--output", metavar="FILE", default="-", help="where to write (default: standard output)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="inputs per forward pass (default: the run's evaluation batch size, else 32)")
    parser.add_argument("--aggregation", choices=("first", "average", "max"), default="first",
                        help="word tag from its subwords, as transformers.pipeline's aggregation_strategy")
    parser.add_argument("--base-model", default=None,
                        help="base model to load the adapter onto (default: the one recorded in the adapter)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, … (default: cuda when available)")
    parser.add_argument("--full-precision", action="store_true",
                        help="load the backbone of an 8-bit/4-bit-trained adapter unquantized, in float32 "
                             "(default: the precision the run was trained and scored on)")
    parser.add_argument("--precision", choices=PRECISIONS, default="exact",
                        help="exact: as the run scored; bf16-checked: a bfloat16 pass (about 3x faster on CPUs "
                             "with AMX), every input with a close call re-run exactly (see docs/reuse.md)")
    parser.add_argument("--check-margin", type=float, default=DEFAULT_CHECK_MARGIN, metavar="GAP",
                        help="bf16-checked: re-run an input exactly when a word's two best labels are closer than "
                             "GAP (log-probability units; default %(default)s)")
    parser.add_argument("--compile", action="store_true",
                        help="bf16-checked: run the bfloat16 pass through torch.compile (compiled once at load; "
                             "falls back to uncompiled with a warning where inductor is unavailable)")


def predict(args) -> int:
    """Everything the user gave is checked before the model loads; the output appears whole or not at all."""
    from peftner.integrity import atomic_output, check_writable_file, refuse_clobber
    from peftner.reuse.tagger import Tagger
    from peftner.reuse.text import read_inputs
    from peftner.validation import check_at_least, resolve_device

    check_at_least(args, {"batch_size": 1})
    check_precision(args.precision, args.check_margin, compile=args.compile)
    if args.output != "-":
        check_writable_file(args.output)
        refuse_clobber(args.output, {"--input": args.input, "--adapter": args.adapter,
                                     "--base-model": args.base_model}, "choose another --output")
    if args.base_model:
        from peftner.models.loading import check_model_path

        check_model_path(args.base_model)  # a missing directory is named before anything loads
    device = resolve_device(args.device)
    items, _ = read_inputs(args.input, args.format)
    if args.output_format == "conll":
        _check_conll_representable(items)
    _quiet()
    tagger = Tagger.from_pretrained(args.adapter, base_model=args.base_model, device=str(device),
                                    full_precision=args.full_precision, precision=args.precision,
                                    check_margin=args.check_margin, compile=args.compile)
    predictions = tagger.predict(items, batch_size=args.batch_size, aggregation=args.aggregation)
    if args.output_format == "jsonl":  # strict JSON: never a bare `NaN` (Tagger refuses non-finite scores first)
        try:
            text = "".join(json.dumps(p.to_dict(), ensure_ascii=False, allow_nan=False) + "\n" for p in predictions)
        except ValueError:
            raise PeftnerError(f"{args.adapter}: a score is not a finite number; nothing was written") from None
    else:
        text = "".join("".join(f"{t}\t{g}\n" for t, g in zip(p.tokens, p.tags)) + "\n" for p in predictions)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with atomic_output(args.output) as out:
            out.write(text)
    return 0


def _check_conll_representable(items):
    """CoNLL output is token<TAB>tag lines: refuse a word it cannot hold (before any model loads)."""
    from peftner.data.readers import conll_cell_problem
    from peftner.reuse.text import tokenize

    for i, item in enumerate(items, start=1):
        for j, word in enumerate(tokenize(item)[0] if isinstance(item, str) else item, start=1):
            problem = conll_cell_problem(word)
            if problem:
                raise PeftnerError(f"--output-format conll: word {j} of input {i} ({word!r}) {problem}, which a "
                                   "CoNLL line cannot hold; use --output-format jsonl")


def export_arguments(parser):
    parser.add_argument("--adapter", required=True, metavar="DIR", help="OUTPUT_DIR/adapter of a run")
    parser.add_argument("--output", required=True, metavar="OUT", help="new directory for the plain model")
    parser.add_argument("--merge", action="store_true",
                        help="merge the adapter weights into the base (LoRA, IA3, …); required for PEFT adapters")
    parser.add_argument("--base-model", default=None,
                        help="base model of the adapter (default: the one recorded in the adapter)")
    parser.add_argument("--overwrite", action="store_true", help="allow a non-empty --output directory")


def export(args) -> int:
    from peftner.models.loading import check_model_path
    from peftner.reuse.export import export_model

    if args.base_model:
        check_model_path(args.base_model)
    _quiet()
    out = export_model(args.adapter, args.output, merge=args.merge, base_model=args.base_model,
                       overwrite=args.overwrite)
    print(f"wrote {out} (load it with transformers.pipeline('token-classification', model='{out}'))")
    return 0
