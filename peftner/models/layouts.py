"""What each family of transformer blocks calls its layers: per-architecture defaults as data.

A *layout* is a family of module names (BERT's ``query``/``value``/``output.dense``, LLaMA's
``q_proj``/``v_proj``/``down_proj``, ...). :data:`LAYOUTS` maps known ``model_type`` values to one;
:func:`layout_of` also recognises an unknown model type whose modules carry a known family's names.
Each method reads its own fields here (LoRA's query/value pair, IA3's scaled modules, where adapters
go, whether P-tuning v2 can reach the keys and values); resolving them against one model is the
method's job (``peftner/methods/<name>.py``), like PEFT's ``peft.utils.constants`` target maps.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftner.errors import PeftnerError


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


def adapter_regex(layout: Layout, variant: str) -> str:
    """Regex of the projections an adapter follows: Houlsby both sub-layers, Pfeiffer feed-forward only."""
    if variant == "pfeiffer":
        return layout.adapter_feedforward
    return f"(?:{layout.adapter_attention})|(?:{layout.adapter_feedforward})"


def layout_of(model_type: str, linear: list[str]) -> Layout | None:
    """The layout of ``model_type``; for an unknown type, the family whose names its linear layers carry."""
    layout = LAYOUTS.get(model_type)
    if layout is None:
        layout = next((lay for lay in dict.fromkeys(LAYOUTS.values())
                       if all(any(n.endswith("." + s) for n in linear) for s in lay.signature)), None)
    return layout


def adapter_targets(layout: Layout | None, model_type: str, variant: str, linear: str = "") -> str:
    """:func:`adapter_regex` of ``layout``, or a one-line refusal naming the model type (and its linear layers)."""
    if layout is None or layout.adapter_feedforward is None:
        known = f"; its linear layers are: {linear}" if linear else ""
        raise PeftnerError(f"adapter: no known attention/feed-forward output projections for model type "
                           f"{model_type!r}{known}")
    return adapter_regex(layout, variant)
