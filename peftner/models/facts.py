"""Architecture facts: what each backbone calls its layers, resolved from ``model_type`` with no flags.

Every method that depends on names inside the model asks here: LoRA/IA3 targets, the feed-forward
modules IA3 scales on their input, where bottleneck adapters go, whether P-tuning v2 can reach the
attention's keys and values, the prompt's embedding width, and which modules form the
token-classification head (trained and saved by every method, never quantized).

A *layout* is a family of module names (BERT's ``query``/``value``/``output.dense``, LLaMA's
``q_proj``/``v_proj``/``down_proj``, ...). :data:`LAYOUTS` maps known ``model_type`` values to one; an
unknown model type gets the layout whose names its modules have, and otherwise PEFT's own mappings
(``peft.utils.constants``) for LoRA and IA3. A method that cannot apply says so in one line, naming
the model type and, for target modules, the model's actual linear-layer names.

Facts come from the config alone (:func:`inspect` builds the model on the ``meta`` device: no
weights are read), so refusals happen before any data is loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from peftner.errors import PeftnerError

ALL_LINEAR = "all-linear"
QUERY_VALUE = "query-value"  # LoRA as Hu et al.: the architecture's attention query/value projections
# IA3 target sets named by role, resolved per architecture (so a tuned default holds on every backbone)
IA3_KEY_VALUE_FFN = "key-value-ffn"  # Liu et al.: keys, values, feed-forward activations (unset means this)
IA3_QUERY_KEY_VALUE_FFN = "query-key-value-ffn"  # the same plus the attention queries
IA3_KEY_VALUE = "key-value"  # attention only
IA3_TARGET_SETS = (IA3_KEY_VALUE_FFN, IA3_QUERY_KEY_VALUE_FFN, IA3_KEY_VALUE)


@dataclass(frozen=True)
class Layout:
    """Module names of one family of transformer blocks (suffixes, PEFT's matching rule)."""

    name: str
    lora: tuple  # Hu et al.: the attention query and value projections (or the fused projection)
    ia3: tuple  # keys, values and the feed-forward down-projection (Liu et al.'s l_k, l_v, l_ff)
    ia3_feedforward: tuple
    ia3_exclude: tuple = ()
    # regexes (full module names) of the attention and feed-forward output projections
    adapter_attention: str | None = None
    adapter_feedforward: str | None = None
    # "bert": BERT-style self-attention modules (peftner's P-tuning v2 layer); "interface": prefixes
    # added in the attention function (any model calling transformers' attention interface);
    # otherwise the reason P-tuning v2 cannot apply
    ptuning_v2: str = "interface"
    ptuning_v2_attention: str | None = None  # suffix of the self-attention modules
    notes: str = ""
    signature: tuple = ()  # module-name suffixes that identify the layout in an unknown model


_BERT_ADAPTER = (r".*\.layer\.\d+\.attention\.output\.dense", r".*\.layer\.\d+\.output\.dense")
BERT = Layout(
    "BERT", lora=("query", "value"), ia3=("key", "value", "output.dense"), ia3_feedforward=("output.dense",),
    ia3_exclude=("attention.output.dense",), adapter_attention=_BERT_ADAPTER[0], adapter_feedforward=_BERT_ADAPTER[1],
    ptuning_v2="bert", ptuning_v2_attention="attention.self",
    signature=("attention.self.query", "attention.self.value", "output.dense"))
DEBERTA = Layout(
    "DeBERTa", lora=("query_proj", "value_proj"), ia3=("key_proj", "value_proj", "output.dense"),
    ia3_feedforward=("output.dense",), ia3_exclude=("attention.output.dense",),
    adapter_attention=_BERT_ADAPTER[0], adapter_feedforward=_BERT_ADAPTER[1],
    ptuning_v2="DeBERTa's disentangled attention scores every key by its relative position to the query, "
               "which a position-less prefix does not have",
    signature=("query_proj", "value_proj", "pos_key_proj"))
DISTILBERT = Layout(
    "DistilBERT", lora=("q_lin", "v_lin"), ia3=("k_lin", "v_lin", "lin2"), ia3_feedforward=("lin2",),
    adapter_attention=r".*\.layer\.\d+\.attention\.out_lin", adapter_feedforward=r".*\.layer\.\d+\.ffn\.lin2",
    ptuning_v2_attention="attention", signature=("q_lin", "v_lin", "lin2"))


def _fused_qkv(name: str, block: str, attention: str, qkv: str, attention_out: str, feedforward_out: str) -> Layout:
    """A layout whose queries, keys and values come from one projection (LoRA adapts, IA3 scales all three)."""
    prefix = rf".*\.{block}\.\d+\."
    return Layout(
        name, lora=(qkv,), ia3=(qkv, feedforward_out), ia3_feedforward=(feedforward_out,),
        adapter_attention=prefix + rf"{attention}\.{attention_out}",
        adapter_feedforward=prefix + feedforward_out.replace(".", r"\."),
        ptuning_v2_attention=attention, signature=(f"{attention}.{qkv}", feedforward_out),
        notes=f"queries, keys and values share one projection ({qkv}): LoRA adapts all three, IA3 scales all three")


MODERNBERT = _fused_qkv("ModernBERT", "layers", "attn", "Wqkv", "Wo", "mlp.Wo")
GPT2 = _fused_qkv("GPT-2", "h", "attn", "c_attn", "c_proj", "mlp.c_proj")
LLAMA = Layout(
    "LLaMA", lora=("q_proj", "v_proj"), ia3=("k_proj", "v_proj", "down_proj"), ia3_feedforward=("down_proj",),
    adapter_attention=r".*\.layers\.\d+\.self_attn\.o_proj", adapter_feedforward=r".*\.layers\.\d+\.mlp\.down_proj",
    ptuning_v2_attention="self_attn", signature=("self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"))

T5 = Layout(
    "T5 encoder", lora=("q", "v"), ia3=("k", "v", "wo"), ia3_feedforward=("wo",),
    adapter_attention=r".*\.block\.\d+\.layer\.0\.SelfAttention\.o",
    adapter_feedforward=r".*\.block\.\d+\.layer\.1\.DenseReluDense\.wo",
    ptuning_v2="T5 adds a learned relative-position bias to every key's score, which a prefix does not have",
    signature=("SelfAttention.q", "SelfAttention.v", "DenseReluDense.wo"))

LAYOUTS: dict[str, Layout] = {
    **{t: BERT for t in ("bert", "roberta", "xlm-roberta", "electra", "camembert", "xlm-roberta-xl", "ernie")},
    **{t: DEBERTA for t in ("deberta-v2",)},
    "distilbert": DISTILBERT,
    "modernbert": MODERNBERT,
    "gpt2": GPT2,
    "t5": T5,
    **{t: LLAMA for t in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "olmo",
                          "olmo2", "granite")},
}


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
    layout = LAYOUTS.get(model_type)
    if layout is None:  # an unknown model type whose module names are those of a known family
        layout = next((lay for lay in dict.fromkeys(LAYOUTS.values())
                       if all(any(n.endswith("." + s) for n in linear) for s in lay.signature)), None)
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
    """Whether the model's attention calls transformers' pluggable attention functions."""
    import inspect as pyinspect
    import sys

    module = sys.modules.get(type(model).__module__)
    try:
        source = pyinspect.getsource(module) if module else ""
    except (OSError, TypeError):
        return False
    return "ALL_ATTENTION_FUNCTIONS" in source


def inspect(model_name: str, trust_remote_code: bool = False, num_labels: int = 2) -> ModelFacts:
    """Facts from the config alone: the model is built on the ``meta`` device, no weights are read."""
    import torch
    from transformers import AutoConfig, AutoModelForTokenClassification

    try:
        config = AutoConfig.from_pretrained(model_name, trust_remote_code=trust_remote_code, num_labels=num_labels)
    except (OSError, ValueError) as err:
        raise PeftnerError(f"{model_name}: could not read the model config: {str(err).splitlines()[0]}") from None
    try:
        with torch.device("meta"):
            model = AutoModelForTokenClassification.from_config(config, trust_remote_code=trust_remote_code)
    except ValueError as err:  # no *ForTokenClassification class for this model type
        raise PeftnerError(f"{model_name}: {config.model_type} has no token-classification model in this "
                           f"transformers: {str(err).splitlines()[0]}") from None
    return facts_of(model)


# ----------------------------------------------------------------------------- per-method defaults
def _peft_mapping(name: str, model_type: str):
    from peft.utils import constants

    return getattr(constants, f"TRANSFORMERS_MODELS_TO_{name}_TARGET_MODULES_MAPPING", {}).get(model_type)


def _need_layout(facts: ModelFacts, method: str, what: str):
    alternative = "" if method == "ia3" else f" (or --target-modules {ALL_LINEAR})"
    raise PeftnerError(f"{method}: no default {what} for model type {facts.model_type!r}; pass --target-modules"
                       f"{alternative}; its linear layers are: {facts.describe_linear()}")


def check_targets(facts: ModelFacts, method: str, targets) -> None:
    """Every listed target must name at least one linear layer of the backbone."""
    if isinstance(targets, str):
        return  # a regex (all-linear resolved): PEFT reports a regex that matches nothing
    missing = [t for t in targets if not facts.matches(t)]
    if missing:
        instead = " or ".join(IA3_TARGET_SETS) if method == "ia3" else ALL_LINEAR
        raise PeftnerError(f"{method}: --target-modules {','.join(missing)} match no linear layer of this "
                           f"{facts.model_type} model; its linear layers are: {facts.describe_linear()} "
                           f"(or use --target-modules {instead})")


def lora_targets(facts: ModelFacts, requested, method: str = "lora"):
    """``requested`` (None or ``query-value``: the architecture's query/value projections;
    ``all-linear``) resolved and checked."""
    if requested in (None, [], QUERY_VALUE, [QUERY_VALUE]):
        if facts.layout is not None:
            targets = list(facts.layout.lora)
        else:
            targets = _peft_mapping("LORA", facts.model_type)
            if not targets:
                _need_layout(facts, method, "target modules")
            targets = list(targets)
    elif list(requested) == [ALL_LINEAR] or requested == ALL_LINEAR:
        return facts.all_linear()
    elif isinstance(requested, str):  # already resolved (all-linear's regex): resolving again keeps it
        return requested
    else:
        targets = list(requested)
    check_targets(facts, method, targets)
    return targets


def ia3_modules(facts: ModelFacts, targets, feedforward, exclude):
    """IA3 (targets, feed-forward, exclude): the layout's unless given; every listed target must exist."""
    if facts.layout is not None:
        default = (list(facts.layout.ia3), list(facts.layout.ia3_feedforward), list(facts.layout.ia3_exclude))
    else:
        peft_targets = _peft_mapping("IA3", facts.model_type)
        default = (list(peft_targets), list(_peft_ff(facts.model_type) or []), []) if peft_targets else None
    named = targets[0] if targets and len(targets) == 1 and targets[0] in IA3_TARGET_SETS else None
    if targets in (None, []) or named == IA3_KEY_VALUE_FFN:
        if default is None:
            _need_layout(facts, "ia3", "target modules")
        targets = default[0]
    elif named:
        if facts.layout is None:
            _need_layout(facts, "ia3", f"{named} modules")
        targets = _ia3_target_set(facts.layout, named)
    targets = list(targets)
    if feedforward is None:
        feedforward = [f for f in (default[1] if default else []) if f in targets]
    if exclude is None:
        exclude = default[2] if default else []
    feedforward, exclude = list(feedforward), list(exclude)
    check_targets(facts, "ia3", targets)
    unscaled = [f for f in feedforward if f not in targets]
    if unscaled:
        raise PeftnerError(f"ia3: --feedforward-modules {','.join(unscaled)} must also be in --target-modules")
    return targets, feedforward, exclude


def _ia3_target_set(layout: Layout, name: str) -> list:
    """``key-value`` or ``query-key-value-ffn`` as the layout's module names. The query projection is
    LoRA's query/value pair minus IA3's modules; a fused query-key-value projection is scaled whole, so
    there both sets include the queries."""
    if name == IA3_KEY_VALUE:
        return [m for m in layout.ia3 if m not in layout.ia3_feedforward]
    return [m for m in layout.lora if m not in layout.ia3] + list(layout.ia3)


def _peft_ff(model_type: str):
    from peft.utils import constants

    return constants.TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING.get(model_type)


def adapter_regex(layout: Layout, variant: str) -> str:
    """Regex of the projections an adapter follows: Houlsby both sub-layers, Pfeiffer feed-forward only."""
    if variant == "pfeiffer":
        return layout.adapter_feedforward
    return f"(?:{layout.adapter_attention})|(?:{layout.adapter_feedforward})"


def adapter_targets(facts: ModelFacts, variant: str) -> str:
    """:func:`adapter_regex` of the model's layout, or a one-line refusal."""
    if facts.layout is None or facts.layout.adapter_feedforward is None:
        raise PeftnerError(f"adapter: no known attention/feed-forward output projections for model type "
                           f"{facts.model_type!r}; its linear layers are: {facts.describe_linear()}")
    return adapter_regex(facts.layout, variant)


def ptuning_v2_mode(facts: ModelFacts) -> str:
    """``"bert"`` or ``"interface"`` (see :class:`Layout`), or a one-line refusal."""
    layout = facts.layout
    mode = layout.ptuning_v2 if layout is not None else ("interface" if facts.uses_attention_interface else
                                                         "its attention does not use transformers' attention "
                                                         "interface, so the keys/values cannot be reached")
    if mode not in ("bert", "interface"):
        raise PeftnerError(f"ptuning_v2 cannot apply to model type {facts.model_type!r}: {mode}")
    if mode == "interface" and not facts.uses_attention_interface:
        raise PeftnerError(f"ptuning_v2 cannot apply to model type {facts.model_type!r}: its attention does not "
                           "use transformers' attention interface, so the keys/values cannot be reached")
    return mode


def ptuning_v2_attention(facts: ModelFacts, model):
    """P-tuning v2 targets: None for the BERT-family layer (its own default), else the attention modules."""
    if ptuning_v2_mode(facts) == "bert":
        return None
    if facts.layout is not None and facts.layout.ptuning_v2_attention:
        return [facts.layout.ptuning_v2_attention]
    from peftner.tuners.ptuning_v2.interface import supports_interface

    return sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if supports_interface(m)})


def check_bitfit(facts: ModelFacts) -> None:
    if facts.backbone_biases == 0:
        raise PeftnerError(f"bitfit: this {facts.model_type} model has no bias terms in its backbone, so BitFit "
                           "would only train the head (use the head method for a linear probe)")


# ----------------------------------------------------------------------------- decoders
def make_bidirectional(model) -> int:
    """Let every position attend to every other: transformers' ``is_causal`` switched off.

    ``create_causal_mask`` returns a bidirectional mask when ``config.is_causal`` is False, and the
    attention functions take ``module.is_causal`` when no mask is passed (SDPA/flash); both are set.
    Returns the number of attention modules changed; 0 means the model was not causal.
    """
    modules = decoder_attention_modules(model)
    for module in modules:
        module.is_causal = False
    configs = {id(c): c for c in (getattr(m, "config", None) for m in model.modules()) if c is not None}
    for config in configs.values():
        config.is_causal = False
    return len(modules)


def prepare_tokenizer(tokenizer):
    """Word-level input for any tokenizer: byte-level BPE gets a prefix space, decoders a pad token.

    ``is_split_into_words`` encodes each word on its own; a byte-level BPE (GPT-2, LLaMA-3, Qwen2,
    ModernBERT) then sees no space before the word and uses the piece for a word at the start of a
    text, not the one it saw inside sentences during pre-training. Decoders often define no padding
    token: the end-of-text token pads (padded positions are masked out and unlabelled). Padding goes
    on the right, which for a causal model leaves every real position's context unchanged.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and _add_prefix_space(backend.pre_tokenizer):
        tokenizer.add_prefix_space = True
    if tokenizer.pad_token_id is None:
        for candidate in ("eos_token", "unk_token", "bos_token"):
            if getattr(tokenizer, candidate, None) is not None:
                tokenizer.pad_token = getattr(tokenizer, candidate)
                break
    tokenizer.padding_side = "right"
    return tokenizer


def _add_prefix_space(pre_tokenizer) -> bool:
    """Switch on ``add_prefix_space`` in every byte-level pre-tokenizer; True if there was one."""
    from tokenizers import pre_tokenizers

    if isinstance(pre_tokenizer, pre_tokenizers.ByteLevel):
        pre_tokenizer.add_prefix_space = True
        return True
    found, index = False, 0
    while isinstance(pre_tokenizer, pre_tokenizers.Sequence):
        try:
            item = pre_tokenizer[index]
        except IndexError:
            break
        found = _add_prefix_space(item) or found
        index += 1
    return found


# ----------------------------------------------------------------------------- the recipe's checks
def preflight(method, method_config, model_name: str, trust_remote_code: bool = False,
              bidirectional: bool = False):
    """Resolve ``method_config``'s architecture defaults and refuse what cannot apply, from the config
    alone, before any data is read. Returns ``(facts, method_config)``; facts is None when the config
    cannot be read (loading the model then reports why)."""
    try:
        facts = inspect(model_name, trust_remote_code)
    except PeftnerError:
        return None, method_config
    if bidirectional and not facts.decoder:
        raise PeftnerError(f"--bidirectional: this {facts.model_type} model has no causal attention to lift "
                           "(it already attends in both directions); the flag is for decoder LLMs")
    if getattr(method, "for_model", None) is not None:
        method_config = method.for_model(method_config, facts)
    return facts, method_config


def never_quantize_head(load_kwargs: dict, facts: ModelFacts | None) -> dict:
    """Keep the head (whatever its name) out of bitsandbytes quantization so it trains in full precision."""
    quantization = load_kwargs.get("quantization_config")
    if quantization is not None and facts is not None:
        quantization.llm_int8_skip_modules = sorted(set(quantization.llm_int8_skip_modules or []) | set(facts.head))
    return load_kwargs


def restore_bidirectional(model, adapter_dir) -> None:
    """Re-apply ``--bidirectional`` on reload: the run saved ``is_causal: false`` in the adapter's config.json."""
    import json
    from pathlib import Path

    path = Path(adapter_dir) / "config.json"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if saved.get("is_causal") is False:
        make_bidirectional(model)
