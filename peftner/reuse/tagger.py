"""Inference with a trained adapter (or full model): batched, windowed, word-level, with entity spans.

Inputs go through the same alignment as training (:func:`peftner.data.encode_sentences`): each word
is predicted at its head (its first subword with characters of the word), and inputs longer than
the model limit are cut into overlapping windows where every word is predicted by exactly one
window. Word tags can also aggregate all of a word's subwords (``average`` / ``max``), like ``transformers.pipeline``'s aggregation strategies.

Several PEFT adapters can share one backbone in one process (:meth:`Tagger.add_adapter`): PEFT keeps
each adapter's weights side by side and :meth:`predict` activates the requested one per call. Each
adapter has its own classification head (PEFT's ``modules_to_save`` holds one copy per adapter name)
and its own label maps, so the heads may have different sizes.

``precision="bf16-checked"`` (``peftner predict --precision bf16-checked``) tags with a bfloat16 copy of
the model (about 3x faster on CPUs with AMX) and re-runs, in the exact mode, every window holding a
word whose two best labels are closer than ``check_margin``: a word's tag can only flip if the
bfloat16 error of that gap exceeds the gap, so the tags equal the exact ones unless the error exceeds
``check_margin`` (:meth:`Tagger.bf16_error` measures it on your inputs; ``Tagger.last_check`` counts
the re-checks). Scores (probabilities) of words that were not re-checked keep the bfloat16 error.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import asdict, dataclass

from peftner.data.readers import token_problem
from peftner.errors import PeftnerError, stop_if_signalled
from peftner.integrity import load_error_line
from peftner.validation import resolve_device
from peftner.reuse.artifact import AdapterInfo, check_same_base, read_adapter_dir, resolve_base_model
from peftner.reuse.precision import CALIBRATION_SAFETY_FACTOR, DEFAULT_CHECK_MARGIN
from peftner.reuse.text import entity_spans, tokenize

AGGREGATIONS = ("first", "average", "max")  # as transformers' token-classification pipeline
_ADAPTER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
DEFAULT_BATCH_SIZE = 32  # for directories that do not record their evaluation batch size


@dataclass
class Entity:
    """One predicted entity.

    ``start``/``end`` are word indices (end exclusive); ``start_char``/``end_char`` are character
    offsets into the input text (only for raw-text inputs). ``score`` is the *mean*, over the
    entity's words, of the softmax probability of each word's predicted tag (at its head subword).
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


@dataclass
class CheckReport:
    """What the last ``bf16-checked`` :meth:`Tagger.predict` call re-ran in the exact mode (``Tagger.last_check``).

    ``close_words``: words whose two best labels were closer than ``check_margin`` in the bfloat16 pass;
    every window holding one is re-run, so ``rechecked_inputs`` counts inputs with at least one;
    ``changed_words``: words whose tag the re-check changed (bfloat16 alone would have tagged them so).
    """

    inputs: int
    rechecked_inputs: int
    windows: int
    rechecked_windows: int
    words: int
    close_words: int
    changed_words: int
    check_margin: float

    @property
    def rechecked_fraction(self) -> float:
        return self.rechecked_inputs / self.inputs if self.inputs else 0.0


@dataclass
class _WordScores:
    """Per word (flat slots): label id, its probability, the window that predicted it (-1: none) and,
    when asked for, its score per label in log space (the gaps between labels are log-probability ratios)."""

    ids: object
    probs: object
    owner: object
    scores: object = None


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
                 device, max_length: int | None, full_precision: bool = False, precision: str = "exact",
                 check_margin: float = DEFAULT_CHECK_MARGIN, compile: bool = False):
        from peftner.reuse.precision import check_precision

        check_precision(precision, check_margin, model, compile)
        self.model = model
        self.tokenizer = tokenizer
        self.base_model = base_model
        self.device = device
        self.full_precision = full_precision
        self._requested_length = max_length
        self._infos: dict[str, AdapterInfo] = {adapter_name or "default": info}
        self._active = adapter_name or "default"
        self._is_peft = adapter_name is not None
        self.precision = precision
        self.check_margin = float(check_margin)
        self.compile = compile
        self.compiled = False  # whether the bfloat16 pass runs compiled (False: not asked, or fell back)
        self.compile_seconds: float | None = None
        self.compile_error: str | None = None
        self._fast = self._fast_forward = None
        if precision != "exact":
            self._build_fast()
        self.last_check: CheckReport | None = None

    def _build_fast(self):
        """The bfloat16 copy of the model and the callable that runs it (compiled with ``compile=True``)."""
        import warnings

        from peftner.reuse.precision import bfloat16_copy, compiled_forward

        self._fast = self._fast_forward = bfloat16_copy(self.model)
        if not self.compile:
            return
        forward, error = compiled_forward(self._fast, self.tokenizer, self.device)
        self.compiled, self.compile_error = forward is not None, error
        if forward is None:
            warnings.warn(f"torch.compile is unavailable here ({error}); the bfloat16 pass runs uncompiled",
                          RuntimeWarning, stacklevel=3)
            return
        self._fast_forward, self.compile_seconds = forward, forward.seconds

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, path, base_model: str | None = None, device: str | None = None,
                        adapter_name: str = "default", max_length: int | None = None,
                        trust_remote_code: bool = False, full_precision: bool = False, precision: str = "exact",
                        check_margin: float = DEFAULT_CHECK_MARGIN, compile: bool = False) -> "Tagger":
        """Load a peftner output (``OUTPUT_DIR/adapter``) for prediction.

        ``base_model`` overrides the base recorded in the directory (see
        :func:`peftner.reuse.artifact.resolve_base_model`); loading an adapter onto a base that is not
        the one it was trained on raises :class:`PeftnerError`. The backbone is loaded the way the run
        scored it (8-bit / 4-bit for quantized runs, its mixed precision, window length and batch
        size; see :mod:`peftner.reuse.precision`); ``full_precision=True`` loads it unquantized in
        float32 instead. ``max_length`` overrides the recorded window length. ``precision`` is
        ``exact`` (as scored) or ``bf16-checked`` (see the module docstring; needs a full-precision
        backbone and holds a bfloat16 copy of the model: 1.5x the memory). ``compile=True`` (with
        ``bf16-checked``) runs the bfloat16 pass through ``torch.compile`` (inductor, frozen weights), compiled
        once here (``compile_seconds``); where inductor cannot compile, it warns and runs uncompiled
        (``compiled`` is False, ``compile_error`` says why). The exact mode and the re-check never run compiled.
        """
        from peftner.models.decoders import restore_bidirectional
        from peftner.models.loading import load_token_classifier, load_tokenizer, prepare_kbit_model
        from peftner.reuse.precision import backbone_load_kwargs, check_precision

        check_precision(precision, check_margin, compile=compile)  # before anything loads

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
        return cls(model, tokenizer, info, base_name, name, device, max_length, full_precision, precision,
                   check_margin, compile)

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
        if self._fast is not None:
            self._build_fast()
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
        from peftner.methods.base import window_length
        from peftner.reuse.precision import recorded_precision

        requested = self._requested_length or recorded_precision(info.metadata).get("max_length")
        return window_length(self.tokenizer, self.model, requested)

    def default_batch_size(self, adapter: str | None = None) -> int:
        """Inputs per forward pass when ``predict`` is not told: the run's evaluation batch size, else 32."""
        from peftner.reuse.precision import recorded_precision

        return recorded_precision(self._info(adapter).metadata).get("eval_batch_size") or DEFAULT_BATCH_SIZE

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
        ``first`` (the head subword's tag: what training optimises), ``average`` (argmax of the
        mean probabilities over the word's subwords) or ``max`` (the tag of the subword with the
        most confident prediction). ``batch_size`` defaults to the run's evaluation batch size, so
        the test file is batched as it was scored.
        """
        info, items, words, offsets, features, batch_size = self._prepare(inputs, batch_size, adapter, aggregation)
        with _readable_errors(info):
            if self.precision == "exact":
                scores = self._score(self.model, features, words, batch_size, aggregation, info)
            else:
                scores = self._checked(features, words, batch_size, aggregation, info)
        ids, probs = scores.ids.tolist(), scores.probs.tolist()
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

    def bf16_error(self, inputs, batch_size: int | None = None, adapter: str | None = None,
                   aggregation: str = "first") -> dict:
        """Tag ``inputs`` in bfloat16 and in the exact mode; how far apart they are, to choose ``check_margin``.

        ``largest_margin_error``: the largest change, over words and labels, of the gap between a word's
        bfloat16 best label and another label (log-probability units): a ``check_margin`` above it
        re-checks every word whose tag bfloat16 got wrong on these inputs. ``differing_tags``: words
        whose bfloat16 tag differs from the exact one. With ``compile=True`` it measures the compiled pass
        (its rounding differs from the uncompiled one).
        """
        import torch

        from peftner.reuse.precision import bfloat16_copy

        info, _, words, _, features, batch_size = self._prepare(inputs, batch_size, adapter, aggregation)
        fast_model = self._fast_forward if self._fast is not None else bfloat16_copy(self.model)
        with _readable_errors(info):
            fast = self._score(fast_model, features, words, batch_size, aggregation, info, fast=True)
            exact = self._score(self.model, features, words, batch_size, aggregation, info, keep_scores=True)
        if not len(fast.ids):
            return {"words": 0, "largest_margin_error": 0.0, "differing_tags": 0}
        top = fast.scores.argmax(dim=-1, keepdim=True)
        gaps = [s.gather(1, top) - s for s in (fast.scores, exact.scores)]
        error = torch.where(gaps[0] == gaps[1], 0.0, gaps[0] - gaps[1])  # equal infinities (p = 0 in both): no error
        error = error.abs().nan_to_num(float("inf")).max()
        return {"words": len(fast.ids), "largest_margin_error": float(error),
                "differing_tags": int((fast.ids != exact.ids).sum())}

    def calibrate_check_margin(self, inputs, safety_factor: float = CALIBRATION_SAFETY_FACTOR,
                               batch_size: int | None = None, adapter: str | None = None,
                               aggregation: str = "first") -> dict:
        """Set ``check_margin`` to ``safety_factor`` times the largest bfloat16 error of a word's margin on
        ``inputs`` (:meth:`bf16_error`): calibrate on held-out data (a dev split), never on what you measure.
        Returns the :meth:`bf16_error` report with the new ``check_margin``."""
        from peftner.errors import require

        require(self.precision != "exact", "precision", "bf16-checked to calibrate its check margin", self.precision)
        require(isinstance(safety_factor, (int, float)) and safety_factor >= 1, "safety_factor", "a number >= 1",
                safety_factor)
        report = self.bf16_error(inputs, batch_size=batch_size, adapter=adapter, aggregation=aggregation)
        self.check_margin = float(safety_factor * report["largest_margin_error"])
        return {**report, "safety_factor": safety_factor, "check_margin": self.check_margin}

    def _prepare(self, inputs, batch_size, adapter, aggregation):
        """Checked arguments, the inputs as word lists (with character offsets of texts) and their windows."""
        from peftner.data import encode_sentences

        if aggregation not in AGGREGATIONS:
            raise PeftnerError(f"aggregation must be {', '.join(AGGREGATIONS[:-1])} or {AGGREGATIONS[-1]}, "
                               f"got {aggregation!r}")
        if batch_size is not None and batch_size < 1:
            raise PeftnerError(f"batch_size must be at least 1, got {batch_size}")
        info = self._info(adapter)
        batch_size = batch_size or self.default_batch_size(adapter)
        if self._is_peft:
            for model in filter(None, (self.model, self._fast)):
                model.set_adapter(adapter or self._active)
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
        return info, items, words, offsets, features, batch_size

    def _checked(self, features: list[dict], words: list[list[str]], batch_size: int, aggregation: str,
                 info: AdapterInfo) -> _WordScores:
        """``bf16-checked``: everything in bfloat16, then the windows with a close call again, exactly."""
        import torch

        fast = self._score(self._fast_forward, features, words, batch_size, aggregation, info, fast=True)
        close = ~(_top_two_gap(fast.scores) >= self.check_margin)  # NaN (bfloat16 overflow) is close too
        windows = torch.unique(fast.owner[close & (fast.owner >= 0)]).tolist()
        changed = 0
        if windows:
            # A sparse sample of the windows: batches as many times smaller, so that neighbours in the
            # length-sorted order are as close in length (as little padding) as in the full pass.
            recheck_batch = max(1, batch_size * len(windows) // len(features))
            exact = self._score(self.model, features, words, recheck_batch, aggregation, info, windows=windows)
            redo = exact.owner >= 0
            changed = int((fast.ids[redo] != exact.ids[redo]).sum())
            fast.ids[redo], fast.probs[redo] = exact.ids[redo], exact.probs[redo]
        self.last_check = CheckReport(
            inputs=len(words), rechecked_inputs=len({features[i]["example_id"] for i in windows}),
            windows=len(features), rechecked_windows=len(windows), words=len(fast.ids),
            close_words=int(close.sum()), changed_words=changed, check_margin=self.check_margin)
        return fast

    def _score(self, model, features: list[dict], words: list[list[str]], batch_size: int, aggregation: str,
               info: AdapterInfo, windows: list[int] | None = None, fast: bool = False,
               keep_scores: bool = False) -> _WordScores:
        """Label id and probability of every word of the inputs (flat slots in input order), from ``windows``
        (default: all features). The exact mode runs under the run's autocast; ``fast`` is the bfloat16
        pass, whose non-finite scores are left for the re-check, and which keeps per-label scores.

        Batches are length-sorted and each batch's words are gathered with tensor indexing, so the
        only Python loop is over batches.
        """
        import torch

        from peftner.data import WordSlots
        from peftner.data.collator import PaddingCollator, length_sorted_batches
        from peftner.reuse.precision import autocast

        slots = WordSlots([len(w) for w in words])
        total = slots.total
        windows = list(range(len(features))) if windows is None else windows
        word_ids = torch.zeros(total, dtype=torch.long)
        word_probs = torch.full((total,), float("nan"))
        owner = torch.full((total,), -1, dtype=torch.long)
        keep_scores = keep_scores or fast
        scores = None
        sums, counts = None, torch.zeros(total)  # "average": summed probabilities per word
        collate = PaddingCollator(self.tokenizer.pad_token_id)
        key = "word_index" if aggregation == "first" else "subword_word"
        context = contextlib.nullcontext() if fast else autocast(info.metadata, self.device, self.full_precision)
        with torch.inference_mode(), context:
            for chosen in length_sorted_batches([len(features[i]["input_ids"]) for i in windows], batch_size):
                stop_if_signalled()
                indices = torch.tensor([windows[j] for j in chosen])
                batch = collate([features[i] for i in indices.tolist()])
                logits = model(input_ids=batch["input_ids"].to(self.device),
                               attention_mask=batch["attention_mask"].to(self.device)).logits
                if not fast and not torch.isfinite(logits).all():
                    raise _NonFiniteScores()
                where, words_at = slots.at(batch["example_id"], batch[key])
                owner[words_at] = indices[where.nonzero(as_tuple=True)[0]]
                picked = logits[where.to(logits.device)].float()
                p = picked.softmax(dim=-1).cpu()
                if keep_scores:
                    if scores is None:
                        scores = torch.full((total, p.shape[-1]), float("nan"))
                    _store_word_scores(scores, words_at, picked.cpu(), p, aggregation)
                if aggregation == "first":
                    word_probs[words_at], word_ids[words_at] = p.max(dim=-1)
                elif aggregation == "average":
                    if sums is None:
                        sums = torch.zeros(total, p.shape[-1])
                    sums.index_add_(0, words_at, p)
                    counts.index_add_(0, words_at, torch.ones(len(words_at)))
                else:  # max: the first subword (in order) whose top probability is the word's highest
                    top, label = p.max(dim=-1)
                    best = torch.full((total,), -1.0).scatter_reduce(0, words_at, top, "amax")
                    order = torch.arange(len(words_at))
                    candidate = torch.where(top == best[words_at], order, len(words_at))
                    chosen_at = torch.full((total,), len(words_at)).scatter_reduce(0, words_at, candidate, "amin")
                    pick = chosen_at[words_at] == order
                    word_probs[words_at[pick]], word_ids[words_at[pick]] = top[pick], label[pick]
        if aggregation == "average" and sums is not None:
            word_probs, word_ids = (sums / counts.clamp(min=1).unsqueeze(1)).max(dim=-1)
            word_probs[counts == 0] = float("nan")
        if len(windows) == len(features) and not fast and total and torch.isnan(word_probs).any():
            raise RuntimeError(f"{int(torch.isnan(word_probs).sum())} words received no prediction (alignment bug)")
        return _WordScores(word_ids, word_probs, owner, scores)


def _store_word_scores(scores, words, logits, probs, aggregation: str):
    """Each word's score per label, in log space, from the one batch that holds all of its subwords
    (every word is owned by exactly one window): ``first`` its head subword's logits, ``average`` the
    log of its mean probabilities, ``max`` the best log-probability of each label over its subwords."""
    import torch

    if aggregation == "first":
        scores[words] = logits
        return
    unique, local = torch.unique(words, return_inverse=True)
    if aggregation == "average":
        summed = torch.zeros(len(unique), probs.shape[-1]).index_add_(0, local, probs)
        scores[unique] = (summed / torch.bincount(local).unsqueeze(1)).log()
    else:
        log_probs = logits.log_softmax(dim=-1)
        best = torch.full((len(unique), probs.shape[-1]), float("-inf"))
        scores[unique] = best.scatter_reduce(0, local.unsqueeze(1).expand_as(log_probs), log_probs, "amax")


def _top_two_gap(scores):
    """Per row, best score minus second best (infinite with one label: nothing to confuse)."""
    import torch

    if scores is None:
        return torch.zeros(0)
    if scores.shape[-1] < 2:
        return torch.full((len(scores),), float("inf"))
    top = scores.topk(2, dim=-1).values
    return top[:, 0] - top[:, 1]


def _load_peft_adapter(base, info: AdapterInfo, adapter_name: str, base_name: str):
    """``PeftModel.from_pretrained`` with one-line errors; prompt tuning viewed as in training."""
    from peft import PeftModel

    from peftner.tuners import VIRTUAL_TOKEN_PEFT_TYPES, single_task
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
    single_task(model)  # POLY: task id 0, as in training
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


@contextlib.contextmanager
def _readable_errors(info: AdapterInfo):
    try:
        yield
    except _NonFiniteScores:  # never tag from (or print) NaN scores
        raise PeftnerError(f"{info.path}: the model produced NaN or infinite scores "
                           "(non-finite weights, or an overflow in reduced precision)") from None


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
