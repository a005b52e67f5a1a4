"""Loading the tokenizer and the token-classification backbone, safely and with clear errors.

Safetensors only (pickle checkpoints are refused), a fast tokenizer prepared for word-level input, and
the head kept out of bitsandbytes quantization."""

from __future__ import annotations

import logging
from pathlib import Path

from peftner.errors import PeftnerError
from peftner.models.facts import ModelFacts

# Never quantized by default (bitsandbytes skip list) even where the model is not inspected first:
# the head names of BERT-style models and GPT-2, LLaMA-style decoders, and ModernBERT's head block.
HEAD_NAMES = ("classifier", "score", "head")


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model", "bpe.codes")
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def looks_like_path(name: str) -> bool:
    """Whether ``name`` can only mean a local directory (a Hub id is ``name`` or ``org/name``)."""
    return (name.startswith(("/", "./", "../", "~", ".\\")) or "\\" in name or name.count("/") > 1
            or name in (".", "..") or (len(name) > 1 and name[1] == ":"))


def check_model_path(name: str) -> None:
    """A local model path that does not exist is reported as such (not as an unknown Hub repository)."""
    path = Path(name).expanduser()
    if looks_like_path(name) and not path.exists():
        raise PeftnerError(f"{name}: model directory not found")
    if path.exists() and not path.is_dir():
        raise PeftnerError(f"{name}: is a file, expected a model directory (or a Hugging Face Hub model id)")


def resolved_model_name(name: str) -> str:
    """A local model directory as its absolute path (a Hub id unchanged): what a run records in its
    adapter (peftner.json, adapter_config.json), so that the adapter loads from any directory."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


def load_tokenizer(name: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    check_model_path(name)
    directory = Path(name)
    if directory.is_dir() and not any((directory / f).is_file() for f in TOKENIZER_FILES):
        # transformers would quietly build an empty tokenizer from config.json: every word -> [UNK]
        raise PeftnerError(f"{name}: model directory has no tokenizer (none of {', '.join(TOKENIZER_FILES[:3])}, ...); "
                           "save the tokenizer next to the model")
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except Exception as err:  # transformers raises OSError/ValueError/TypeError depending on what is missing
        hint = " (the directory has no tokenizer files: save the tokenizer next to the model)" \
            if Path(name).is_dir() else ""
        raise PeftnerError(f"{name}: could not load a tokenizer{hint}: {str(err).splitlines()[0]}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise PeftnerError(f"{name}: peftner needs a fast (Rust) tokenizer for word alignment; "
                           "this model only has a slow one")
    if len(tokenizer) <= len(tokenizer.all_special_tokens):
        raise PeftnerError(f"{name}: the tokenizer has an empty vocabulary")
    prepare_tokenizer(tokenizer)  # decoders: a padding token; byte-level BPE: a space before each word
    if tokenizer.pad_token_id is None:
        raise PeftnerError(f"{name}: the tokenizer defines no padding token (nor an end-of-text token to pad with)")
    return tokenizer


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


def load_token_classifier(name: str, id2label: dict, trust_remote_code: bool = False, complete: bool = False,
                          with_head: bool = False, **kwargs):
    """``AutoModelForTokenClassification`` with a head for ``id2label``; safetensors only. A model type
    transformers has no token classifier for gets peftner's (:mod:`peftner.models.heads`).

    Pickle checkpoints (``pytorch_model.bin``) are refused: unpickling can run arbitrary code.
    ``complete``: the directory is a trained token classifier, so every weight must come from it
    (transformers would fill missing ones, the head included, with fresh random values and only warn).
    A model that is already a token classifier for other labels (the usual "start from a public NER
    model") keeps its head when the labels match by name (rows reordered to ``id2label``), else its
    label layer is re-initialised (:func:`fit_head`). ``with_head``: return ``(model, how)`` where
    ``how`` says what became of the head ("new", "kept", "kept, rows reordered", "re-initialised ...").
    """
    from transformers import AutoModelForTokenClassification

    from peftner.models.heads import ensure_token_classifier_for

    check_model_path(name)
    directory = Path(name)
    if directory.is_dir() and not any(directory.glob("*.safetensors")):
        pickles = sorted(p.name for pattern in PICKLE_WEIGHTS for p in directory.glob(pattern))
        found = f" (found {', '.join(pickles[:3])})" if pickles else ""
        raise PeftnerError(f"{name}: no .safetensors weights{found}; peftner loads weights only from "
                           "safetensors, never from pickle files (convert them with a trusted tool first)")
    ensure_token_classifier_for(name, trust_remote_code)  # model types with no head class in transformers
    labels = [id2label[i] for i in range(len(id2label))]
    source = None if complete else classifier_labels(name, trust_remote_code)
    load_labels = source or labels  # load the head as saved (no size mismatch), then fit it to ours
    try:
        model, info = AutoModelForTokenClassification.from_pretrained(
            name, num_labels=len(load_labels), id2label=dict(enumerate(load_labels)),
            label2id={label: i for i, label in enumerate(load_labels)},
            use_safetensors=True, trust_remote_code=trust_remote_code, output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError) as err:  # RuntimeError: weights of the wrong shapes
        raise PeftnerError(f"{name}: could not load the model: {str(err).strip().splitlines()[0]}") from None
    missing = sorted(k for k in info.get("missing_keys") or () if not k.endswith("position_ids"))
    if complete and (missing or info.get("mismatched_keys")):
        what = f"lacks the weights {missing[0]}" if missing else \
            f"has weights of the wrong shape ({sorted(info['mismatched_keys'])[0]})"
        raise PeftnerError(f"{name}: the model {what}; the directory is incomplete or was written for another "
                           "label set")
    head = "new"
    if source is not None:
        from peftner.models.facts import head_names

        saved = not any(k.split(".", 1)[0] in head_names(model) for k in missing)
        head = fit_head(model, source, labels, keep=saved and sorted(source) == sorted(labels))
        if not saved:
            head = "new"
    model = same_4bit_numerics_on_every_cpu(model)
    return (model, head) if with_head else model


def classifier_labels(name: str, trust_remote_code: bool = False) -> list[str] | None:
    """The labels of ``name`` when it is already a token classifier (its config names a
    ``...ForTokenClassification`` architecture), else None."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except Exception:  # noqa: BLE001 - no config to read: the load that follows says why
        return None
    if not any(str(a).endswith("ForTokenClassification") for a in getattr(config, "architectures", None) or []):
        return None
    id2label = getattr(config, "id2label", None) or {}
    try:
        return [str(id2label[i]) for i in range(len(id2label))] or None
    except KeyError:
        return None


def fit_head(model, source: list[str], labels: list[str], keep: bool) -> str:
    """Turn the label layer of a head trained for ``source`` into one for ``labels`` (in place).

    ``keep`` (the same labels by name): its rows are reordered to ``labels``; else the layer is
    re-initialised as transformers initialises a new head. The label layer is every linear layer
    of the head with one output per source label. Returns what was done, for the run's summary.
    """
    import torch

    from peftner.models.facts import head_names

    order = [source.index(label) for label in labels] if keep else None
    for top in head_names(model):
        for path, layer in list(getattr(model, top).named_modules()):
            if not isinstance(layer, torch.nn.Linear) or layer.out_features != len(source):
                continue
            fresh = torch.nn.Linear(layer.in_features, len(labels), bias=layer.bias is not None,
                                    device=layer.weight.device, dtype=layer.weight.dtype)
            with torch.no_grad():
                if keep:
                    fresh.weight.copy_(layer.weight[order])
                    if layer.bias is not None:
                        fresh.bias.copy_(layer.bias[order])
                else:
                    model._init_weights(fresh)
            parent, _, attribute = f"{top}.{path}".rstrip(".").rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attribute, fresh)
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {label: i for i, label in enumerate(labels)}
    model.num_labels = model.config.num_labels = len(labels)
    if keep:
        return "kept" if source == labels else "kept, rows reordered by label name"
    shown = ", ".join(source[:4]) + (", ..." if len(source) > 4 else "")
    return f"re-initialised (the model's {len(source)} labels {shown} are not this data's)"


def never_quantize_head(load_kwargs: dict, facts: ModelFacts | None) -> dict:
    """Keep the head (whatever its name) out of bitsandbytes quantization so it trains in full precision."""
    quantization = load_kwargs.get("quantization_config")
    if quantization is not None and facts is not None:
        quantization.llm_int8_skip_modules = sorted(set(quantization.llm_int8_skip_modules or []) | set(facts.head))
    return load_kwargs


def same_4bit_numerics_on_every_cpu(model):
    """Keep bitsandbytes' 4-bit layers on the one CPU path that trains, evaluates and reloads alike.

    On CPUs with AVX512-BF16 (not on others) bitsandbytes 0.50 repacks a 4-bit weight in eval mode for a
    faster kernel with bfloat16 scales: dev/test scores then depend on the processor, and layers whose
    input size is below the quantization block size (64) crash in that repacking. Turning it off keeps
    the scored predictions identical to training-time numerics on every machine.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
    return model




def saved_base_config(model):
    """The base model's config to save next to an adapter, without its load-time quantization.

    A ``quantization_config`` in config.json tells ``from_pretrained`` the checkpoint already holds
    quantized weights; the base checkpoint does not, so reloading with it silently leaves the int8 /
    4-bit layers unquantized and broken. Quantization is re-applied from the method's load_kwargs.
    """
    import copy

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = copy.deepcopy(base.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    return config


def _tensor_bytes(t) -> int:
    return t.numel() * t.element_size() if t is not None else 0


def _quantization_scales_bytes(module) -> int:
    """Bytes of the scales a bitsandbytes layer keeps besides its packed weight."""
    weight = getattr(module, "weight", None)
    kind = weight.__class__.__name__
    if kind == "Int8Params":  # one fp32 absmax per output row, on the weight or (after a forward) the state
        scb = getattr(weight, "SCB", None)
        return _tensor_bytes(scb if scb is not None else getattr(getattr(module, "state", None), "SCB", None))
    state = getattr(weight, "quant_state", None) if kind == "Params4bit" else None
    if state is None:
        return 0
    nested = state.state2 if getattr(state, "nested", False) else None
    return (_tensor_bytes(state.absmax) + _tensor_bytes(getattr(state, "offset", None))
            + (_tensor_bytes(nested.absmax) if nested is not None else 0))


def backbone_bytes(model) -> int:
    """Bytes held in memory by the frozen weights.

    Quantized weights count at their packed size (int8: 1 byte, 4-bit: half a byte per weight) plus
    their scales. Everything frozen counts, including the embeddings that bitsandbytes leaves in
    full precision: this is the memory the backbone really takes.
    """
    frozen = sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad)
    # bitsandbytes layers only: PEFT wrappers expose the same weight and must not count it twice
    quantized = [m for m in model.modules() if type(m).__module__.startswith("bitsandbytes")
                 and getattr(getattr(m, "weight", None), "requires_grad", True) is False]
    return frozen + sum(_quantization_scales_bytes(m) for m in quantized)


# --------------------------------------------------------------------------- quantized backbones


def bitsandbytes_config(**kwargs):
    """A ``BitsAndBytesConfig`` that never quantizes the classifier head."""
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise PeftnerError("quantized backbones need the package bitsandbytes (pip install bitsandbytes)") from None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(llm_int8_skip_modules=list(HEAD_NAMES), **kwargs)


def prepare_kbit_model(model):
    """Freeze the quantized backbone and upcast its fp16/bf16 leftovers (LayerNorms) to fp32.

    This is PEFT's ``prepare_model_for_kbit_training`` without gradient checkpointing: checkpointing
    trades ~30% more compute for activation memory, which a 6-layer encoder on NER-length inputs
    does not need. The head is not quantized (see ``bitsandbytes_config``) and the method's
    ``modules_to_save`` makes it trainable again.
    """
    from peft import prepare_model_for_kbit_training

    # LLM.int8 casts fp32 activations to fp16 for the int8 matmul and logs it on every call.
    logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
