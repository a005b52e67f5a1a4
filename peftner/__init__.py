"""peftner: parameter-efficient fine-tuning for token classification (NER).

Layers, each importing only the ones before it (docs/architecture.md has the full map):
``peftner.data`` (readers, label schema, subword alignment) → ``peftner.tuners`` (peftner's own PEFT
tuners and the checked ``get_peft_model``) → ``peftner.methods`` (one module per method: its config
and defaults, and ``apply``) → ``peftner.training`` (one Accelerate loop, checkpoints, callbacks) →
``peftner.metrics`` / ``peftner.report`` (scores, ``RunMetrics``) → ``peftner.recipe`` (a run as
named stages; every ``recipes/<method>_ner.py``) and ``peftner.reuse`` (loading, predicting,
exporting what a run saved); ``peftner.experiments`` (comparisons, sweeps) and ``peftner.cli`` sit on top.
"""

__version__ = "0.1.0"

# Let PEFT load peftner's own adapter types (bottleneck adapters, P-tuning v2). Cheap: PEFT is only
# imported here if it already is; otherwise the registration runs right after ``import peft``.
from peftner.tuners.registry import register_when_peft_is_imported as _register  # noqa: E402

_register()
