"""A token-classification head for model types that transformers has none for (Gemma 3 first).

transformers 5.24 builds ``LlamaForTokenClassification`` and most decoders' token classifiers from one
mixin, ``GenericForTokenClassification``: the bare ``AutoModel`` under the model's own
``base_model_prefix``, dropout and a linear ``score`` layer. Some model types have a bare model but no
such class (``gemma3_text``: ``AutoModelForTokenClassification`` refuses it). :func:`ensure_token_classifier`
builds the same class for them, ``<Base>ForTokenClassification``, and registers it with
``AutoModelForTokenClassification``; from then on everything that goes through the auto class —
``from_pretrained`` of a causal-LM checkpoint (its ``lm_head`` is left out, its backbone loads), meta-device
inspection, bitsandbytes quantization, PEFT, ``save_pretrained`` and reloading an exported model — works
as for a model type transformers supports natively. The registration lives in this process only: a
merged export of such a model loads in plain transformers after ``import peftner.models.heads`` and
``ensure_token_classifier(config)`` (``peftner predict`` and ``Tagger`` do it for you).
"""

from __future__ import annotations

_BUILT: dict[type, type] = {}


def ensure_token_classifier(config) -> type | None:
    """The ``*ForTokenClassification`` class for ``config`` (built and registered when transformers has
    none); None when the model type has no bare model either (loading then reports it)."""
    from transformers import AutoModelForTokenClassification, PreTrainedModel
    from transformers.modeling_layers import GenericForTokenClassification
    from transformers.models.auto.modeling_auto import MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING, MODEL_MAPPING

    config_class = type(config)
    if config_class in _BUILT:
        return _BUILT[config_class]
    try:
        return MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING[config_class]
    except KeyError:
        pass
    try:
        base = MODEL_MAPPING[config_class]
    except KeyError:
        return None
    pretrained = next((k for k in base.__mro__ if PreTrainedModel in k.__bases__), None)
    if pretrained is None or not getattr(pretrained, "base_model_prefix", ""):
        return None
    name = base.__name__.removesuffix("Model") + "ForTokenClassification"
    built = type(name, (GenericForTokenClassification, pretrained), {
        "__module__": __name__, "base_model_prefix": pretrained.base_model_prefix, "config_class": config_class,
        "__doc__": f"{base.__name__} with a linear token-classification head (peftner's; transformers has none)."})
    AutoModelForTokenClassification.register(config_class, built, exist_ok=True)
    _BUILT[config_class] = built
    return built


def ensure_token_classifier_for(name: str, trust_remote_code: bool = False) -> None:
    """:func:`ensure_token_classifier` for the model at ``name`` (a config that cannot be read is left to
    the loader to report)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError):
        return
    ensure_token_classifier(config)


def is_peftner_head(model) -> bool:
    """Whether ``model`` (or the model a PEFT wrapper holds) uses a head class built here."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return type(base) in _BUILT.values()
