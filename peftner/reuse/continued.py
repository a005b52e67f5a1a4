"""Continued training: ``--init-adapter DIR`` starts a run from an existing adapter and its head.

The label list of the new run is the old one followed by the tags that only the new data has, so
every old tag keeps its label id and its row of the classification head; rows for new tags are
appended with the fresh initialisation of the new head. The base model defaults to the adapter's
own base (``--model`` may name it explicitly; another base is refused), and the method must be the
one the adapter was trained with (its configuration, e.g. the LoRA rank, must match too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from peftner.errors import PeftnerError
from peftner.reuse.artifact import AdapterInfo, check_same_base, read_adapter_dir, resolve_base_model


def _pad_head_rows(state: dict, expected: dict, n_old: int, n_new: int) -> dict:
    """Grow head tensors from ``n_old`` to ``n_new`` rows: old rows from ``state``, new ones from ``expected``."""
    out = dict(state)
    for key, value in state.items():
        target = expected.get(key)
        if (target is not None and value.shape != target.shape and value.dim() >= 1
                and value.shape[0] == n_old and target.shape[0] == n_new and value.shape[1:] == target.shape[1:]):
            grown = target.detach().to("cpu", copy=True).to(value.dtype)
            grown[:n_old] = value
            out[key] = grown
    return out


def _load_safetensors(directory: Path, pattern: str) -> dict:
    from safetensors.torch import load_file

    state = {}
    for file in sorted(directory.glob(pattern)):
        state.update(load_file(str(file)))
    return state


@dataclass
class InitAdapter:
    info: AdapterInfo
    method: object  # peftner.methods.Method

    @property
    def base_model(self) -> str | None:
        """The base to train on when ``--model`` is not given (the adapter's own base)."""
        if self.info.kind == "full" and not self.info.metadata.get("base_model"):
            return None  # a full model from elsewhere: its weights replace the base's anyway
        return resolve_base_model(self.info)

    def extend_schema(self, schema):
        """The old label list, then the tags new in this data (old label ids preserved)."""
        from peftner.data.labels import LabelSchema
        from peftner.report import describe_scheme

        old = self.info.labels
        if self.info.scheme and self.info.scheme != schema.scheme:
            raise PeftnerError(f"--init-adapter {self.info.path}: its labels are {self.info.scheme} tags but this "
                               f"data is {describe_scheme(schema.scheme, schema.source_scheme)}; convert the data to {self.info.scheme} (or pass "
                               f"--tag-scheme {self.info.scheme} if that is what it is)")
        new = [label for label in schema.labels if label not in old]
        return LabelSchema(old + new, schema.scheme, schema.source_scheme)

    def load_into(self, model, num_labels: int):
        """Copy the adapter's weights (head rows included) into the freshly prepared ``model``."""
        n_old = len(self.info.labels)
        if self.method.is_peft:
            from peft import get_peft_model_state_dict, set_peft_model_state_dict

            check_same_base(self.info.fingerprint, model.get_base_model(), self.info.path, "the --model base")
            expected = get_peft_model_state_dict(model)
            state = _pad_head_rows(_load_safetensors(self.info.path, "adapter_model*.safetensors"),
                                   expected, n_old, num_labels)
            unknown = sorted(set(state) - set(expected))
            try:
                if unknown:
                    raise RuntimeError(f"unexpected weights {', '.join(unknown[:3])}")
                set_peft_model_state_dict(model, state)
            except RuntimeError as err:
                raise PeftnerError(f"{self.info.path}: the adapter does not fit this run's {self.method.name} "
                                   f"configuration (e.g. a different rank or target modules): "
                                   f"{str(err).strip().splitlines()[-1].strip()}") from None
        else:
            from peftner.reuse.partial import TRAINED_FILE

            trained_only = self.info.kind == "trained"  # head / BitFit: the frozen rest is the base's
            if trained_only:
                check_same_base(self.info.fingerprint, model, self.info.path, "the --model base")
            expected = model.state_dict()
            state = _pad_head_rows(_load_safetensors(self.info.path, TRAINED_FILE if trained_only
                                                     else "model*.safetensors"), expected, n_old, num_labels)
            try:
                result = model.load_state_dict(state, strict=False)
            except RuntimeError as err:
                raise PeftnerError(f"{self.info.path}: the model does not fit this run's base model: "
                                   f"{str(err).strip().splitlines()[-1].strip()}") from None
            missing = [] if trained_only else [k for k in result.missing_keys if not k.endswith("position_ids")]
            if result.unexpected_keys or missing:
                raise PeftnerError(f"{self.info.path}: the model does not fit this run's base model "
                                   f"(missing {len(result.missing_keys)}, unexpected "
                                   f"{len(result.unexpected_keys)} weights)")
        return model


def prepare_init_adapter(path, method) -> InitAdapter:
    """Check ``--init-adapter`` early (before any data or model loading) for the recipe's ``method``."""
    info = read_adapter_dir(path)
    if method.is_peft != (info.kind == "peft"):
        kind = {"peft": "a PEFT adapter", "trained": "the trained tensors of a model"}.get(
            info.kind, "a fully fine-tuned model")
        raise PeftnerError(f"--init-adapter {path}: holds {kind} ({info.method or 'unknown method'}); "
                           f"continue it with its own method, not {method.name}")
    if info.metadata.get("method") and info.metadata["method"] != method.name:
        raise PeftnerError(f"--init-adapter {path}: was trained with {info.metadata['method']}; "
                           f"continue it with that method, not {method.name}")
    return InitAdapter(info, method)
