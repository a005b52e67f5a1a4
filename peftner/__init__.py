"""peftner: parameter-efficient fine-tuning for token classification (NER).

Layers: ``peftner.data`` (readers, labels, alignment) → ``peftner.methods`` (each turns a model into
the model to train) → ``peftner.training`` (one Accelerate loop) → ``peftner.metrics`` and
``peftner.report``. ``peftner.recipe.main`` ties them together for the scripts in ``recipes/``.
"""

__version__ = "0.1.0"
