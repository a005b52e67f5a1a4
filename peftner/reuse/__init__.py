"""Reuse trained adapters: predict, export merged models, share a backbone, continue training.

* :class:`Tagger` — ``Tagger.from_pretrained(OUTPUT_DIR/adapter).predict(texts)``;
  :meth:`Tagger.add_adapter` puts several adapters on one backbone.
* :func:`export_model` — merge a LoRA/IA3 adapter into a plain transformers model directory.
* :func:`write_artifacts` — the metadata (``peftner.json``) and model card every run writes.
* :func:`prepare_init_adapter` — ``--init-adapter``: continue training an adapter on new data.

See docs/reuse.md.
"""

from peftner.reuse.artifact import AdapterInfo, read_adapter_dir, resolve_base_model
from peftner.reuse.card import model_card, write_artifacts
from peftner.reuse.continued import prepare_init_adapter
from peftner.reuse.export import export_model
from peftner.reuse.tagger import Entity, Prediction, Tagger
from peftner.reuse.text import entity_spans, read_inputs, tokenize

__all__ = ["AdapterInfo", "Entity", "Prediction", "Tagger", "entity_spans", "export_model", "model_card",
           "prepare_init_adapter", "read_adapter_dir", "read_inputs", "resolve_base_model", "tokenize",
           "write_artifacts"]
