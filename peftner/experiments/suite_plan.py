"""A suite's plan: the YAML file of backbones, corpora, methods and seeds, read into checked cells.

A plan (the committed one is ``benchmarks/suite.yaml``) lists entries, each a backbone (a name
and its ``--model``), the corpora (``--dataset`` names), the methods and the seeds::

    seeds: 3
    extra: --keep-checkpoints 0            # flags of every run
    entries:
      - backbone: minilm                   # no model: the embedded default
        datasets: [wnut16]
        methods: [full, lora, ia3]
      - backbone: smollm2-135m
        model: ../backbones/smollm2-135m   # relative to the plan file
        datasets: [wnut16]
        methods: [lora, {lora_bidirectional: lora --bidirectional}]   # a label: a method and its flags
        seeds: 1
      - backbone: minilm
        datasets: [conll2003]
        methods: [[lora, full], [ia3]]     # groups: every cell's lora and full (all seeds) before any ia3

Every value is checked when the plan is read; a mistake is one line naming the file, the entry and the key.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from peftner.errors import PeftnerError
from peftner.experiments.matrix import MATRIX_FLAGS
from peftner.experiments.search import Budget
from peftner.methods import METHODS


@dataclass(frozen=True)
class Cell:
    """One backbone on one corpus: a run matrix of labels (method + flags) × seeds."""

    backbone: str
    model: str | None
    dataset: str
    data_flags: list[str]  # --dataset NAME, or the files of a corpus given by flags
    labels: dict[str, tuple[str, list[str]]]  # label -> (method, its extra flags)
    seeds: int
    extra: list[str] = field(default_factory=list)
    reuse: Path | None = None  # a matrix folder whose runs of the same flags count as this cell's
    tune: dict | None = None  # {"n_trials": N, "budget": Budget}: each method searched on dev first
    groups: list[list[str]] | None = None  # labels in groups run one after another (None: one group)

    @property
    def folder(self) -> str:
        return self.dataset + ("-tuned" if self.tune else "")

    @property
    def stages(self) -> int:
        """How many groups of methods run one after another (one when the methods are not grouped)."""
        return len(self.groups) if self.groups else 1

    @property
    def name(self) -> str:
        return f"{self.backbone}/{self.folder}"

    @property
    def setting(self) -> str:
        return f"tuned ({self.tune['n_trials']} trials)" if self.tune else "defaults"


def load_plan(path: Path) -> list[Cell]:
    """The cells of a plan file, every value checked (one line naming the file, entry and key)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise PeftnerError(f"{path}: cannot be read ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise PeftnerError(f"{path}{f':{mark.line + 1}' if mark else ''}: invalid YAML") from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list) or not data["entries"]:
        raise PeftnerError(f"{path}: expected a mapping with a non-empty list 'entries'")
    unknown = set(data) - {"seeds", "extra", "entries"}
    if unknown:
        raise PeftnerError(f"{path}: unknown key {sorted(unknown)[0]!r} (expected seeds, extra, entries)")
    seeds = _count(data.get("seeds", 3), f"{path}: seeds")
    extra = _split_flags(data.get("extra"), f"{path}: extra")
    cells, seen = [], set()
    for number, entry in enumerate(data["entries"], start=1):
        where = f"{path}: entry {number}"
        if not isinstance(entry, dict):
            raise PeftnerError(f"{where}: expected a mapping (backbone, model, datasets, methods, seeds, extra)")
        unknown = set(entry) - {"backbone", "model", "datasets", "methods", "seeds", "extra", "reuse", "tune"}
        if unknown:
            raise PeftnerError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        backbone = entry.get("backbone")
        if not isinstance(backbone, str) or not backbone.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise PeftnerError(f"{where}: backbone must be a name of letters, digits, '-', '_' or '.', got {backbone!r}")
        model = entry.get("model")
        if model is not None:
            model = str(model)
            if model.startswith((".", "/")):  # a local directory: relative to the plan file
                model = str((path.parent / model).resolve())
        datasets = _datasets(entry.get("datasets"), path, where)
        labels, groups = _labels(entry.get("methods"), where)
        entry_seeds = _count(entry.get("seeds", seeds), f"{where}: seeds")
        entry_extra = [*extra, *_split_flags(entry.get("extra"), f"{where}: extra")]
        reuse = _reuse(entry.get("reuse"), path, where)
        tune = _tune(entry.get("tune"), where)
        for dataset, data_flags in datasets.items():
            cell = Cell(backbone, model, dataset, data_flags, labels, entry_seeds, entry_extra, reuse.get(dataset),
                        tune, groups)
            if cell.name in seen:
                raise PeftnerError(f"{where}: {backbone} on {dataset} ({cell.setting}) is planned twice")
            seen.add(cell.name)
            cells.append(cell)
    unused = {d for d in reuse} - {d for d in datasets}
    if unused:
        raise PeftnerError(f"{where}: reuse names {sorted(unused)[0]!r}, which is not among its datasets")
    return cells


def _tune(tune, where: str) -> dict | None:
    """``tune: {n_trials: N, budget_epochs: E | budget_steps: S}``: search each method on dev first, each
    trial the first E epochs or S steps of the run its winner trains (:class:`~peftner.experiments.search.Budget`)."""
    if tune is None:
        return None
    if not isinstance(tune, dict) or set(tune) - {"n_trials", "budget_epochs", "budget_steps"} or "n_trials" not in tune:
        raise PeftnerError(f"{where}: tune must be a mapping with n_trials and optionally budget_epochs or "
                           "budget_steps")
    if "budget_epochs" in tune and "budget_steps" in tune:
        raise PeftnerError(f"{where}: tune: use either budget_epochs or budget_steps")
    n_trials = _count(tune["n_trials"], f"{where}: tune: n_trials")
    budget = Budget(*(_count(tune[key], f"{where}: tune: {key}") if key in tune else None
                      for key in ("budget_epochs", "budget_steps")))
    return {"n_trials": n_trials, "budget": budget}


def _reuse(reuse, path: Path, where: str) -> dict[str, Path]:
    """``reuse: {dataset: folder}``: a run matrix (compare's results folder) made with the same flags."""
    if reuse is None:
        return {}
    if not isinstance(reuse, dict) or not all(isinstance(v, str) for v in reuse.values()):
        raise PeftnerError(f"{where}: reuse must map a dataset to a results folder of peftner compare")
    folders = {str(k): (path.parent / v).resolve() for k, v in reuse.items()}
    missing = next((f for f in folders.values() if not (f / "runs").is_dir()), None)
    if missing:
        raise PeftnerError(f"{where}: reuse: {missing} has no runs/ folder (not a peftner compare result)")
    return folders


DATA_FILE_FLAGS = ("--train-file", "--validation-file", "--test-file")


def _datasets(datasets, path: Path, where: str) -> dict[str, list[str]]:
    """``datasets``: ``--dataset`` names, or ``{name: "--train-file A --validation-file B --test-file C"}``
    (relative files are relative to the plan file, like ``model``)."""
    if not isinstance(datasets, list) or not datasets:
        raise PeftnerError(f"{where}: datasets must be a non-empty list of dataset names")
    result = {}
    for item in datasets:
        if isinstance(item, str) and item:
            result[item] = ["--dataset", item]
        elif isinstance(item, dict) and len(item) == 1 and isinstance(next(iter(item.values())), str):
            (name, flags), = item.items()
            words = _split_flags(flags, f"{where}: {name}")
            result[str(name)] = [_from_plan(previous, word, path) for previous, word in zip(["", *words], words)]
        else:
            raise PeftnerError(f"{where}: a dataset is a name or {{name: '--train-file ... --test-file ...'}}, "
                               f"got {item!r}")
    return result


def _from_plan(previous: str, word: str, path: Path) -> str:
    """A data file flag's value (``--train-file A`` or ``--train-file=A``) made relative to the plan file."""
    flag, is_joined, value = word.partition("=")
    if is_joined and flag in DATA_FILE_FLAGS:
        return f"{flag}={_from_plan(flag, value, path)}"
    if previous in DATA_FILE_FLAGS and not Path(word).is_absolute():
        return str((path.parent / word).resolve())
    return word


def _count(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PeftnerError(f"{where} must be a whole number of at least 1, got {value!r}")
    return value


def _split_flags(text, where: str) -> list[str]:
    """Recipe flags written as one string (shell quoting), or one line naming where they are malformed."""
    try:
        return shlex.split(str(text or ""))
    except ValueError as err:  # an unbalanced quote
        raise PeftnerError(f"{where}: {err}") from None


def _labels(methods, where: str) -> tuple[dict[str, tuple[str, list[str]]], list[list[str]]]:
    """``methods``: names, or ``{label: "method --flags"}`` mappings; or lists of them, groups that run
    one after another. Returns the labels and the groups (one group when the list is flat)."""
    if not isinstance(methods, list) or not methods:
        raise PeftnerError(f"{where}: methods must be a non-empty list")
    nested = [isinstance(item, list) for item in methods]
    if any(nested) and not all(nested):
        raise PeftnerError(f"{where}: methods is either a list of methods or a list of groups (lists) of methods")
    labels, groups = {}, []
    for group in methods if all(nested) else [methods]:
        if not group:
            raise PeftnerError(f"{where}: a group of methods is empty")
        groups.append([])
        for item in group:
            if isinstance(item, str):
                label, spec = item, item
            elif isinstance(item, dict) and len(item) == 1:
                (label, spec), = item.items()
            else:
                raise PeftnerError(f"{where}: a method is a name or {{label: 'method --flags'}}, got {item!r}")
            words = shlex.split(str(spec))
            if not words or words[0] not in METHODS:
                raise PeftnerError(f"{where}: {label}: unknown method {words[0] if words else ''!r}; choose from "
                                   f"{', '.join(METHODS)}")
            if label in labels:
                raise PeftnerError(f"{where}: method {label!r} listed twice")
            labels[str(label)] = (words[0], words[1:])
            groups[-1].append(str(label))
    return labels, groups


def check_flags(cells: list[Cell]) -> None:
    """Every run's recipe flags parse for its method before anything runs: a typo in the plan is one line
    naming the cell and the label, not a failure of every run."""
    from peftner.config import parse_args
    from peftner.methods import get_method

    for cell in cells:
        for label, (method, flags) in cell.labels.items():
            argv = [*base_argv(cell), *flags]
            # the suite trains whole splits, so --max-train-samples is the plan's to set
            clash = next((a for a in argv if a.split("=", 1)[0] in set(MATRIX_FLAGS) - {"--max-train-samples"}), None)
            if clash:
                raise PeftnerError(f"{cell.name} {label}: the plan sets {clash.split('=', 1)[0]}, which the suite "
                                   "sets for every run itself")
            try:
                parse_args(get_method(method), argv)
            except PeftnerError as err:
                raise PeftnerError(f"{cell.name} {label}: {err}") from None


def base_argv(cell: Cell) -> list[str]:
    """The flags every run of the cell starts with: its model, its corpus and the plan's extra flags."""
    return [*(["--model", cell.model] if cell.model else []), *cell.data_flags, *cell.extra]
