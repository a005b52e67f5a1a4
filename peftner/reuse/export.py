"""Export an adapter as a plain transformers model directory (adapter weights merged into the base).

The result loads with ``AutoModelForTokenClassification.from_pretrained(OUT)`` and
``transformers.pipeline("token-classification", model=OUT)``: ``config.json`` with the label maps,
the tokenizer, and ``model.safetensors``. Only methods whose update folds into the base weights can
be merged (PEFT's ``merge_and_unload``: LoRA, IA3, …); prompt-style methods add inputs rather than
change weights, so they cannot become a plain model.
"""

from __future__ import annotations

from pathlib import Path

from peftner.errors import PeftnerError
from peftner.reuse.artifact import read_adapter_dir
from peftner.reuse.card import model_card
from peftner.reuse.tagger import Tagger


def _merge(tagger: Tagger, adapter_dir: Path):
    model = tagger.model
    method = tagger._info(None).method or "this"
    if not callable(getattr(model.base_model, "merge_and_unload", None)):
        raise PeftnerError(f"{adapter_dir}: {method} adapters cannot be merged into the base weights "
                           "(only weight-update methods such as LoRA and IA3 can); load the adapter "
                           "with peftner (Tagger / peftner predict) instead")
    try:
        return model.merge_and_unload()
    except (ValueError, NotImplementedError, TypeError, AttributeError) as err:
        raise PeftnerError(f"{adapter_dir}: {method} adapters cannot be merged: {str(err).splitlines()[0]}") from None


def export_model(adapter_dir, output, merge: bool = False, base_model: str | None = None,
                 overwrite: bool = False) -> Path:
    """Write a plain transformers token-classification model for ``adapter_dir`` into ``output``."""
    from peftner.integrity import write_json_atomic
    from peftner.report import RunMetrics
    from peftner.reuse.artifact import METADATA_FILE

    adapter_dir, output = Path(adapter_dir), Path(output)
    info = read_adapter_dir(adapter_dir)
    if info.kind == "peft" and not merge:
        raise PeftnerError(f"{adapter_dir}: a PEFT adapter becomes a plain model only by merging it into "
                           "its base: pass --merge")
    from peftner.integrity import refuse_clobber
    from peftner.reuse.artifact import resolve_base_model

    base = resolve_base_model(info, base_model) if info.kind != "full" else None
    refuse_clobber(output, {"--adapter": adapter_dir, "the base model" if base_model is None else "--base-model": base},
                   "choose another --output")
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise PeftnerError(f"{output}: directory exists and is not empty (choose a new --output)")
    # Merged weights are plain floats: a quantized run is merged into its unquantized base.
    tagger = Tagger.from_pretrained(adapter_dir, base_model=base_model, device="cpu", full_precision=True)
    model = _merge(tagger, adapter_dir) if info.kind == "peft" else tagger.model
    labels = info.labels
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {label: i for i, label in enumerate(labels)}
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output, safe_serialization=True)
    tagger.tokenizer.save_pretrained(output)
    meta = dict(info.metadata)
    meta.update({"is_peft": False, "merged_from": str(adapter_dir), "labels": "config.json",
                 "base_model": meta.get("base_model") or tagger.base_model})
    meta.pop("base_fingerprint", None)  # the merged weights are no longer the base's
    write_json_atomic(output / METADATA_FILE, meta)
    metrics_file = adapter_dir.parent / "metrics.json"
    metrics = RunMetrics.read(metrics_file) if metrics_file.is_file() else None
    (output / "README.md").write_text(model_card(meta, metrics), encoding="utf-8")
    return output
