"""Facts about one model, read from its config and module tree: what every method resolves against.

The layout (:mod:`peftner.models.layouts`), the token-classification head, the backbone's linear
layers and biases, whether attention is causal. :func:`inspect_model` builds the model on the
``meta`` device from its config alone (no weights are read), so refusals happen before any data
is loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from peftner.errors import PeftnerError
from peftner.models.layouts import Layout, layout_of


@dataclass
class ModelFacts:
    """What the methods need to know about one model (read from its config and module tree)."""

    model_type: str
    layout: Layout | None
    head: list[str]  # top-level modules above the backbone: trained and saved by every method
    linear: list[str] = field(default_factory=list)  # full names of the backbone's linear layers
    backbone_prefix: str = ""
    backbone_biases: int = 0  # bias parameters in the backbone (BitFit's trainable set)
    decoder: bool = False
    token_dim: int = 0
    num_layers: int | None = None
    num_heads: int | None = None
    uses_attention_interface: bool = False

    def linear_names(self) -> list[str]:
        """The distinct last name components of the backbone's linear layers (what targets match)."""
        return sorted({n.rsplit(".", 1)[-1] for n in self.linear})

    def describe_linear(self) -> str:
        return ", ".join(self.linear_names()) or "none"

    def matches(self, suffix: str) -> bool:
        """PEFT's rule for a list entry: the full name equals it or ends with ``.`` + it."""
        return any(n == suffix or n.endswith("." + suffix) for n in self.linear)

    def all_linear(self) -> str:
        """``all-linear`` as a regex over the backbone only (the head is trained in full, not adapted)."""
        names = "|".join(re.escape(n) for n in self.linear_names())
        return rf"{re.escape(self.backbone_prefix)}\..*\.(?:{names})" if self.backbone_prefix else rf".*\.(?:{names})"


def _is_linear(module) -> bool:
    import torch

    return isinstance(module, torch.nn.Linear) or type(module).__name__ in ("Conv1D", "Linear8bitLt", "Linear4bit")


def decoder_attention_modules(model) -> list:
    """Attention modules carrying transformers' ``is_causal`` flag set to True (decoder self-attention)."""
    return [m for m in model.modules() if getattr(m, "is_causal", None) is True]


def head_names(model) -> list[str]:
    """The token-classification head, whatever its name: every top-level module with parameters
    besides the backbone (``classifier``; ``score`` in LLaMA-style decoders; ``head`` + ``classifier``
    in ModernBERT, whose prediction-head block sits between the encoder and the classifier)."""
    prefix = getattr(model, "base_model_prefix", "") or ""
    backbone = getattr(model, prefix, None) if prefix else None
    names = [n for n, child in model.named_children()
             if child is not backbone and any(True for _ in child.parameters())]
    if not names or backbone is None:
        raise PeftnerError(f"{type(model).__name__}: cannot tell its token-classification head from its backbone")
    return names


def facts_of(model) -> ModelFacts:
    """Facts about a token-classification model already built (on any device, meta included)."""
    config = model.config
    model_type = getattr(config, "model_type", "?")
    prefix = getattr(model, "base_model_prefix", "") or ""
    head = head_names(model)
    linear = [n for n, m in model.named_modules()
              if _is_linear(m) and n.split(".", 1)[0] not in head]
    biases = sum(p.numel() for n, p in model.named_parameters()
                 if n.endswith(".bias") and n.split(".", 1)[0] not in head)
    embeddings = model.get_input_embeddings()
    layout = layout_of(model_type, linear)
    return ModelFacts(
        model_type=model_type, layout=layout, head=head, linear=linear, backbone_prefix=prefix,
        backbone_biases=biases, decoder=bool(decoder_attention_modules(model)),
        token_dim=getattr(embeddings, "embedding_dim", 0) if embeddings is not None else 0,
        num_layers=_first_attr(config, "num_hidden_layers", "n_layer", "n_layers", "num_layers"),
        num_heads=_first_attr(config, "num_attention_heads", "n_head", "n_heads"),
        uses_attention_interface=_uses_attention_interface(model))


def _first_attr(config, *names):
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def _uses_attention_interface(model) -> bool:
    """Whether the model's attention calls transformers' pluggable attention functions (read in the
    backbone's module: a head class of peftner's own lives elsewhere)."""
    import inspect
    import sys

    prefix = getattr(model, "base_model_prefix", "") or ""
    backbone = getattr(model, prefix, None) if prefix else None
    module = sys.modules.get(type(backbone if backbone is not None else model).__module__)
    try:
        source = inspect.getsource(module) if module else ""
    except (OSError, TypeError):
        return False
    return "ALL_ATTENTION_FUNCTIONS" in source


def inspect_model(model_name: str, trust_remote_code: bool = False, num_labels: int = 2) -> ModelFacts:
    """Facts from the config alone: the model is built on the ``meta`` device, no weights are read."""
    import torch
    from transformers import AutoConfig, AutoModelForTokenClassification

    try:
        config = AutoConfig.from_pretrained(model_name, trust_remote_code=trust_remote_code, num_labels=num_labels)
    except (OSError, ValueError) as err:
        raise PeftnerError(f"{model_name}: could not read the model config: {str(err).splitlines()[0]}") from None
    from peftner.models.heads import ensure_token_classifier

    ensure_token_classifier(config)
    try:
        with torch.device("meta"):
            model = AutoModelForTokenClassification.from_config(config, trust_remote_code=trust_remote_code)
    except ValueError as err:  # no *ForTokenClassification class for this model type
        raise PeftnerError(f"{model_name}: {config.model_type} has no token-classification model in this "
                           f"transformers: {str(err).splitlines()[0]}") from None
    return facts_of(model)


# ----------------------------------------------------------------------------- per-method defaults
def peft_mapping(name: str, model_type: str):
    """PEFT's own default target modules of ``name`` (LORA, IA3, ...) for ``model_type`` (None if unknown)."""
    from peft.utils import constants

    return getattr(constants, f"TRANSFORMERS_MODELS_TO_{name}_TARGET_MODULES_MAPPING", {}).get(model_type)


def peft_ia3_feedforward(model_type: str):
    from peft.utils import constants

    return constants.TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING.get(model_type)
