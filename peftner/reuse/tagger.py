"""Inference with a trained adapter (or full model): batched, windowed, word-level, with entity spans.

Inputs go through the same alignment as training (:func:`peftner.data.encode_sentences`): each word
is predicted at its first subword, and inputs longer than the model limit are cut into overlapping
windows where every word is predicted by exactly one window. Word tags can also aggregate all of a
word's subwords (``average`` / ``max``), like ``transformers.pipeline``'s aggregation strategies.

Several PEFT adapters can share one backbone in one process (:meth:`Tagger.add_adapter`): PEFT keeps
each adapter's weights side by side and :meth:`predict` activates the requested one per call. Each
adapter has its own classification head (PEFT's ``modules_to_save`` holds one copy per adapter name)
and its own label maps, so the heads may have different sizes.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from peftner.data.readers import token_problem
from peftner.errors import PeftnerError
from peftner.integrity import load_error_line
from peftner.validation import resolve_device
from peftner.reuse.artifact import AdapterInfo, check_same_base, read_adapter_dir, resolve_base_model
from peftner.reuse.text import entity_spans, tokenize

AGGREGATIONS = ("first", "average", "max")  # as transformers' token-classification pipeline
_ADAPTER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
DEFAULT_BATCH_SIZE = 32  # for directories that do not record their evaluation batch size


@dataclass
class Entity:
    """One predicted entity.

    ``start``/``end`` are word indices (end exclusive); ``start_char``/``end_char`` are character
    offsets into the input text (only for raw-text inputs). ``score`` is the *mean*, over the
    entity's words, of the softmax probability of each word's predicted tag (at its first subword).
    """

    text: str
    type: str
    start: int
    end: int
    score: float
    start_char: int | None = None
    end_char: int | None = None


@dataclass
class Prediction:
    """Tags of one input: one tag and its probability per word, and the decoded entities."""

    tokens: list[str]
    tags: list[str]
    scores: list[float]
    entities: list[Entity]
    text: str | None = None
    offsets: list[tuple[int, int]] | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.text is None:
            data.pop("text")
            data.pop("offsets")
            for entity in data["entities"]:
                entity.pop("start_char")
                entity.pop("end_char")
        else:
            data["offsets"] = [list(o) for o in self.offsets]
        return data


def _check_items(inputs) -> list:
    if isinstance(inputs, str):
        inputs = [inputs]
    items = list(inputs)
    for i, item in enumerate(items):
        if isinstance(item, str):
            continue
        if not isinstance(item, (list, tuple)) or not item or any(token_problem(t) for t in item):
            raise PeftnerError(f"input {i}: expected a text (str) or a list of non-empty word strings")
    return items


class Tagger:
    """A token classifier loaded from ``OUTPUT_DIR/adapter`` (PEFT adapter or full model)."""

    def __init__(self, model, tokenizer, info: AdapterInfo, base_model: str | None, adapter_name: str | None,
                 device, max_length: int | None, full_precision: bool = False):
        self.model = model
        self.tokenizer = tokenizer
        self.base_model = base_model
        self.device = device
        self.full_precision = full_precision
        self._requested_length = max_length
        self._infos: dict[str, AdapterInfo] = {adapter_name or "default": info}
        self._active = adapter_name or "default"
        self._is_peft = adapter_name is not None

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, path, base_model: str | None = None, device: str | None = None,
                        adapter_name: str = "default", max_length: int | None = None,
                        trust_remote_code: bool = False, full_precision: bool = False) -> "Tagger":
        """Load a peftner output (``OUTPUT_DIR/adapter``) for prediction.

        ``base_model`` overrides the base recorded in the directory (see
        :func:`peftner.reuse.artifact.resolve_base_model`); loading an adapter onto a base that is not
        the one it was trained on raises :class:`PeftnerError`. The backbone is loaded the way the run
        scored it (8-bit / 4-bit for quantized runs, its mixed precision, window length and batch
        size; see :mod:`peftner.reuse.precision`); ``full_precision=True`` loads it unquantized in
        float32 instead. ``max_length`` overrides the recorded window length.
        """
        from peftner.architectures import restore_bidirectional
        from peftner.modeling import load_token_classifier, load_tokenizer
        from peftner.reuse.precision import backbone_load_kwargs

        info = read_adapter_dir(path)
        device = resolve_device(device, "device")
        load_kwargs = backbone_load_kwargs(info.metadata, device, full_precision)
        if info.kind == "full":
            model = load_token_classifier(str(info.path), info.id2label, trust_remote_code, complete=True)
            restore_bidirectional(model, info.path)
            tokenizer = load_tokenizer(str(info.path), trust_remote_code)
            base_name, name = None, None
        else:
            base_name = resolve_base_model(info, base_model)
            if info.kind == "peft":
                _check_adapter_name(adapter_name)
            base = load_token_classifier(base_name, info.id2label, trust_remote_code, **load_kwargs)
            if load_kwargs:
                from peftner.methods.lora import prepare_kbit_model

                base = prepare_kbit_model(base)  # as in training: non-quantized leftovers in float32
            restore_bidirectional(base, info.path)  # a --bidirectional run: attention without the causal mask
            check_same_base(info.fingerprint, base, info.path, base_name)
            if info.kind == "trained":
                from peftner.reuse.partial import load_trained

                model, name = load_trained(base, info.path), None
            else:
                model, name = _load_peft_adapter(base, info, adapter_name, base_name), adapter_name
            has_tokenizer = (info.path / "tokenizer_config.json").is_file()
            tokenizer = load_tokenizer(str(info.path) if has_tokenizer else base_name, trust_remote_code)
        if "quantization_config" not in load_kwargs:  # quantized weights were placed at load time
            model.to(device)
        model.eval()
        return cls(model, tokenizer, info, base_name, name, device, max_length, full_precision)

    def add_adapter(self, name: str, path) -> int:
        """Load another adapter trained on the same base next to the loaded ones; returns its bytes in memory."""
        import torch

        if not self._is_peft:
            raise PeftnerError("this Tagger holds a fully fine-tuned model; only PEFT adapters can share a backbone")
        _check_adapter_name(name)
        if name in self._infos:
            raise PeftnerError(f"an adapter named {name!r} is already loaded")
        _check_name_free(name, self.model)
        info = read_adapter_dir(path)
        if info.kind != "peft":
            what = "a full model" if info.kind == "full" else f"{info.method or 'a'} weights of a full model"
            raise PeftnerError(f"{info.path}: {what}, not a PEFT adapter; load it with Tagger.from_pretrained")
        first = next(iter(self._infos.values()))
        if info.peft_type != first.peft_type:
            raise PeftnerError(f"{info.path}: a {info.peft_type} adapter cannot share a backbone with "
                               f"{first.peft_type} adapters (PEFT holds one method per model)")
        check_same_base(info.fingerprint, self.model.get_base_model(), info.path, self.base_model or "the base")
        if not self.full_precision:
            from peftner.reuse.precision import recorded_precision

            mine, theirs = (recorded_precision(i.metadata).get("quantization_config") for i in (first, info))
            if mine != theirs:
                raise PeftnerError(f"{info.path}: trained on a {_backbone(info)} backbone, but this Tagger's "
                                   f"backbone is {_backbone(first)}; load both with full_precision=True to share it")
        self._prepare_heads(name, len(info.id2label))
        try:
            self.model.load_adapter(str(info.path), adapter_name=name)
        except (RuntimeError, ValueError, KeyError) as err:
            raise PeftnerError(f"{info.path}: the adapter does not fit the loaded base model: "
                               f"{str(err).splitlines()[0]}") from None
        _check_loaded_keys(self.model, name, info.path)
        if not getattr(self.model.get_base_model(), "is_quantized", False):
            self.model.to(self.device)
        self.model.eval()
        self._infos[name] = info
        with torch.no_grad():
            return self.adapter_bytes(name)

    def _prepare_heads(self, name: str, num_labels: int):
        """Give the new adapter a head of its own size before PEFT loads its weights into it.

        PEFT creates an adapter's ``modules_to_save`` copy by deep-copying the base head, whose size
        is the first adapter's label count; a head with another label count would not load.
        """
        import copy

        import torch
        from peft.utils import ModulesToSaveWrapper

        for module in self.model.modules():
            if not isinstance(module, ModulesToSaveWrapper) or name in module.modules_to_save:
                continue
            original = module.original_module
            if isinstance(original, torch.nn.Linear) and original.out_features != num_labels:
                head = copy.deepcopy(original)
                head.weight = torch.nn.Parameter(original.weight.new_zeros(num_labels, original.in_features))
                if original.bias is not None:
                    head.bias = torch.nn.Parameter(original.bias.new_zeros(num_labels))
                head.out_features = num_labels
                module.modules_to_save[name] = head

    # ------------------------------------------------------------------ introspection
    @property
    def max_length(self) -> int:
        """Subwords per window for the active adapter: the run's own window length unless overridden."""
        return self._window_length(self._info(None))

    def _window_length(self, info: AdapterInfo) -> int:
        from peftner.modeling import window_length
        from peftner.reuse.precision import recorded_precision

        requested = self._requested_length or recorded_precision(info.metadata).get("max_length")
        return window_length(self.tokenizer, self.model, requested)

    @property
    def adapters(self) -> list[str]:
        return list(self._infos)

    def labels(self, adapter: str | None = None) -> list[str]:
        return self._info(adapter).labels

    def _info(self, adapter: str | None) -> AdapterInfo:
        name = adapter or self._active
        if name not in self._infos:
            raise PeftnerError(f"no adapter named {name!r}; loaded: {', '.join(self._infos)}")
        return self._infos[name]

    def adapter_bytes(self, adapter: str | None = None) -> int:
        """Bytes of the parameters that belong to one adapter (its weights and its head copy).

        For a fully fine-tuned model: the whole model.
        """
        if not self._is_peft:
            return sum(p.numel() * p.element_size() for p in self.model.parameters())
        name = adapter or self._active
        self._info(name)
        return sum(p.numel() * p.element_size() for n, p in self.model.named_parameters()
                   if name in n.split("."))

    def memory_report(self) -> dict[str, int]:
        """``{"backbone": bytes shared by all adapters, <adapter>: bytes of that adapter, ...}``."""
        if not self._is_peft:
            return {"model": self.adapter_bytes()}
        names = set(self._infos)
        backbone = sum(p.numel() * p.element_size() for n, p in self.model.named_parameters()
                       if not names & set(n.split(".")))
        return {"backbone": backbone, **{name: self.adapter_bytes(name) for name in self._infos}}

    # ------------------------------------------------------------------ prediction
    def predict(self, inputs, batch_size: int | None = None, adapter: str | None = None,
                aggregation: str = "first") -> list[Prediction]:
        """Tag texts (``str``, split by :func:`peftner.reuse.text.tokenize`) or word lists.

        Returns one :class:`Prediction` per input, in input order. ``adapter`` picks one of the
        adapters loaded with :meth:`add_adapter` (default: the first). ``aggregation`` turns subword
        predictions into word tags as ``transformers.pipeline(aggregation_strategy=...)`` does:
        ``first`` (the first subword's tag: what training optimises), ``average`` (argmax of the
        mean probabilities over the word's subwords) or ``max`` (the tag of the subword with the
        most confident prediction). ``batch_size`` defaults to the run's evaluation batch size, so
        the test file is batched as it was scored.
        """
        from peftner.data import encode_sentences
        from peftner.reuse.precision import autocast, recorded_precision

        if aggregation not in AGGREGATIONS:
            raise PeftnerError(f"aggregation must be {', '.join(AGGREGATIONS[:-1])} or {AGGREGATIONS[-1]}, "
                               f"got {aggregation!r}")
        if batch_size is not None and batch_size < 1:
            raise PeftnerError(f"batch_size must be at least 1, got {batch_size}")
        info = self._info(adapter)
        if batch_size is None:
            batch_size = recorded_precision(info.metadata).get("eval_batch_size") or DEFAULT_BATCH_SIZE
        if self._is_peft:
            self.model.set_adapter(adapter or self._active)
        items = _check_items(inputs)
        words, offsets = [], []
        for item in items:
            if isinstance(item, str):
                tokens, spans = tokenize(item)
                words.append(tokens)
                offsets.append(spans)
            else:
                words.append(list(item))
                offsets.append(None)
        features = encode_sentences(words, None, self.tokenizer, {}, self._window_length(info),
                                    subword_owner=aggregation != "first")
        try:
            with autocast(info.metadata, self.device, self.full_precision):  # the run's mixed precision
                ids, probs = self._word_predictions(features, [len(w) for w in words], batch_size, aggregation)
        except _NonFiniteScores:  # never tag from (or print) NaN scores
            raise PeftnerError(f"{info.path}: the model produced NaN or infinite scores "
                               "(non-finite weights, or an overflow in reduced precision)") from None
        labels = info.id2label
        results, position = [], 0
        for item, tokens, spans in zip(items, words, offsets):
            n = len(tokens)
            tags = [labels[i] for i in ids[position:position + n]]
            scores = probs[position:position + n]
            position += n
            entities = []
            for etype, start, end in entity_spans(tags):
                score = sum(scores[start:end]) / (end - start)
                if spans is None:
                    entities.append(Entity(" ".join(tokens[start:end]), etype, start, end, score))
                else:
                    a, b = spans[start][0], spans[end - 1][1]
                    entities.append(Entity(item[a:b], etype, start, end, score, a, b))
            results.append(Prediction(tokens, tags, scores, entities,
                                      item if spans is not None else None, spans))
        return results

    def _word_predictions(self, features: list[dict], num_words: list[int], batch_size: int,
                          aggregation: str) -> tuple[list[int], list[float]]:
        """Label id and probability of every word of every input, flattened in input order.

        Batches are length-sorted and each batch's words are gathered with tensor indexing, so the
        only Python loop is over batches: the per-word work is two ``tolist`` calls at the end.
        """
        import torch

        from peftner.data.collator import PaddingCollator, length_sorted_batches

        first_word = torch.tensor([0] + num_words[:-1], dtype=torch.long).cumsum(0)  # global id of word 0
        total = sum(num_words)
        word_ids = torch.zeros(total, dtype=torch.long)
        word_probs = torch.full((total,), float("nan"))
        sums, counts = None, torch.zeros(total)  # "average": summed probabilities per word
        collate = PaddingCollator(self.tokenizer.pad_token_id)
        key = "word_index" if aggregation == "first" else "subword_word"
        with torch.inference_mode():
            for indices in length_sorted_batches([len(f["input_ids"]) for f in features], batch_size):
                batch = collate([features[i] for i in indices])
                logits = self.model(input_ids=batch["input_ids"].to(self.device),
                                    attention_mask=batch["attention_mask"].to(self.device)).logits
                if not torch.isfinite(logits).all():
                    raise _NonFiniteScores()
                where = batch[key] >= 0
                rows = where.nonzero(as_tuple=True)[0]
                words = first_word[batch["example_id"][rows]] + batch[key][where]
                p = logits[where.to(logits.device)].float().softmax(dim=-1).cpu()
                if aggregation == "first":
                    word_probs[words], word_ids[words] = p.max(dim=-1)
                elif aggregation == "average":
                    if sums is None:
                        sums = torch.zeros(total, p.shape[-1])
                    sums.index_add_(0, words, p)
                    counts.index_add_(0, words, torch.ones(len(words)))
                else:  # max: the first subword (in order) whose top probability is the word's highest
                    top, label = p.max(dim=-1)
                    best = torch.full((total,), -1.0).scatter_reduce(0, words, top, "amax")
                    order = torch.arange(len(words))
                    candidate = torch.where(top == best[words], order, len(words))
                    chosen = torch.full((total,), len(words)).scatter_reduce(0, words, candidate, "amin")
                    pick = chosen[words] == order
                    word_probs[words[pick]], word_ids[words[pick]] = top[pick], label[pick]
        if aggregation == "average" and sums is not None:
            word_probs, word_ids = (sums / counts.clamp(min=1).unsqueeze(1)).max(dim=-1)
            word_probs[counts == 0] = float("nan")
        if total and torch.isnan(word_probs).any():
            raise RuntimeError(f"{int(torch.isnan(word_probs).sum())} words received no prediction (alignment bug)")
        return word_ids.tolist(), word_probs.tolist()


def _load_peft_adapter(base, info: AdapterInfo, adapter_name: str, base_name: str):
    """``PeftModel.from_pretrained`` with one-line errors; prompt tuning viewed as in training."""
    from peft import PeftModel

    from peftner.tuners import VIRTUAL_TOKEN_PEFT_TYPES
    from peftner.tuners.prompt.model import PromptTokenClassifier

    _check_name_free(adapter_name, base)
    try:
        model = PeftModel.from_pretrained(base, str(info.path), adapter_name=adapter_name)
    except KeyError as err:  # a weight PEFT needs (e.g. the head) is not in the file
        raise PeftnerError(f"{info.path / 'adapter_model.safetensors'}: lacks the weights {err.args[0]}; "
                           "the file is incomplete or was written for another configuration") from None
    except (RuntimeError, ValueError) as err:
        raise PeftnerError(f"{info.path}: the adapter does not fit the base model {base_name} "
                           f"(a different base?): {load_error_line(err)}") from None
    _check_loaded_keys(model, adapter_name, info.path)
    if model.active_peft_config.peft_type in VIRTUAL_TOKEN_PEFT_TYPES:
        # PEFT's token classifier returns rows for the soft prompt too: drop them as training did.
        model = PromptTokenClassifier.from_peft_model(model)
    return model


def _backbone(info: AdapterInfo) -> str:
    from peftner.reuse.precision import recorded_precision

    record = recorded_precision(info.metadata)
    return record.get("backbone") if record.get("quantization_config") else "full-precision"


class _NonFiniteScores(Exception):
    """Raised inside the batch loop; :meth:`Tagger.predict` turns it into a message naming the adapter."""


def _check_adapter_name(name: str):
    if not _ADAPTER_NAME.match(name or "") or name in ("base_model", "model", "weight", "bias"):
        raise PeftnerError(f"adapter name {name!r}: use letters, digits, '_' or '-' (not a module name)")


def _check_name_free(name: str, model):
    """Adapter parameters are found by name component, so the name must not be a module name."""
    if any(name in n.split(".") for n, _ in model.named_parameters()):
        raise PeftnerError(f"adapter name {name!r} is also a module name of the model; choose another")


def _check_loaded_keys(model, adapter_name: str, directory):
    """PEFT fills adapter weights missing from the file with fresh ones and only warns: refuse instead."""
    from peft import get_peft_model_state_dict
    from safetensors import safe_open

    path = directory / "adapter_model.safetensors"
    with safe_open(str(path), framework="pt") as handle:
        stored = set(handle.keys())
    missing = sorted(set(get_peft_model_state_dict(model, adapter_name=adapter_name)) - stored)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise PeftnerError(f"{path}: lacks the weights {missing[0]}{more}; the file is incomplete or was "
                           "written for another configuration")
