"""peftner: parameter-efficient fine-tuning for token classification (NER).

Layers: ``peftner.data`` (readers, labels, alignment) → ``peftner.methods`` (each turns a model into
the model to train) → ``peftner.training`` (one Accelerate loop) → ``peftner.metrics`` and
``peftner.report``. ``peftner.recipe.main`` ties them together for the scripts in ``recipes/``.
"""

__version__ = "0.1.0"

# Let PEFT load peftner's own adapter types (bottleneck adapters, P-tuning v2). Cheap: PEFT is only
# imported here if it already is; otherwise the registration runs right after ``import peft``.
from peftner.tuners.registry import register_when_peft_is_imported as _register  # noqa: E402

_register()
