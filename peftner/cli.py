"""The ``peftner`` command: one subcommand per task (``peftner predict``, ``peftner export``, …).

Adding a subcommand: write ``add_arguments(parser)`` and ``run(args) -> int | None`` functions
(anywhere; import heavy libraries inside ``run`` so ``peftner --help`` stays fast) and list them
in :data:`COMMANDS` as ``Command(name, help, "module:add_arguments_function", "module:run_function")``.
A :class:`~peftner.errors.PeftnerError` raised by a command prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass

from peftner.errors import INTERRUPTED_STATUS, OneLineParser, PeftnerError, interrupt_on_sigterm, interrupted_line


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: str  # "module:function" taking the subparser
    run: str  # "module:function" taking the parsed namespace, returning an exit status (None = 0)


COMMANDS: list[Command] = [
    Command("train", "train one method (same flags as recipes/<method>_ner.py; `peftner train lora --help`)",
            "peftner.recipe:train_arguments", "peftner.recipe:train_command"),
    Command("compare", "run methods x seeds (x training-set sizes) and write the parameters-vs-F1 table (same as "
                       "benchmarks/compare.py)",
            "peftner.experiments.compare:compare_arguments", "peftner.experiments.compare:compare_command"),
    Command("tune", "search a method's hyperparameters on dev with Optuna, then test the winner over seeds",
            "peftner.experiments.tune:tune_arguments", "peftner.experiments.tune:tune_command"),
    Command("suite", "run a plan of backbones x corpora x methods x seeds and write its summary (benchmarks/suite.yaml)",
            "peftner.experiments.suite:suite_arguments", "peftner.experiments.suite:suite_command"),
    Command("predict", "tag texts with a trained adapter (JSON Lines or CoNLL output)",
            "peftner.reuse.commands:predict_arguments", "peftner.reuse.commands:predict"),
    Command("export", "write a plain transformers model (adapter merged into its base)",
            "peftner.reuse.commands:export_arguments", "peftner.reuse.commands:export"),
    Command("push", "upload an adapter or exported model to the Hugging Face Hub (with its model card)",
            "peftner.reuse.hub:push_arguments", "peftner.reuse.hub:push_command"),
]


def _resolve(reference: str):
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


def build_parser() -> argparse.ArgumentParser:
    from peftner import __version__

    parser = OneLineParser(prog="peftner", description="Parameter-efficient fine-tuning for NER.")
    parser.add_argument("--version", action="version", version=f"peftner {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        _resolve(command.add_arguments)(sub)
        sub.set_defaults(_run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    interrupt_on_sigterm()
    try:
        args = build_parser().parse_args(argv)
        status = _resolve(args._run)(args)
    except PeftnerError as err:
        print(f"peftner: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM, in any command (a tune trial was handed back)
        print(interrupted_line(err), file=sys.stderr)
        return INTERRUPTED_STATUS
    except BrokenPipeError:  # `peftner predict ... | head`
        sys.stderr.close()
        return 0
    except OSError as err:  # a path the user gave: unreadable, a directory, disk full, read-only
        from peftner.integrity import os_error_message

        print(f"peftner: error: {os_error_message(err)}", file=sys.stderr)
        raise SystemExit(2) from None
    return int(status or 0)


if __name__ == "__main__":
    raise SystemExit(main())
