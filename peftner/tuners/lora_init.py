"""LoRA's initialisations beyond PEFT's default, applied so that they really run and reload exactly.

``--init-lora-weights`` takes PEFT's values. Three kinds need more than ``LoraConfig``:

* **data-driven** (``eva``, ``corda``, ``lora_ga``): a pass over training batches before the first
  step. The training loop hands every method the same batches through ``Method.initialize``; here is
  what each does with them: EVA computes the SVD of each adapted layer's inputs
  (``initialize_lora_eva_weights``, ranks redistributed); CorDA the covariance of those inputs and
  LoRA-GA the gradients of the frozen weights (PEFT's ``preprocess_corda`` / ``preprocess_loraga`` on
  the bare backbone), after which the adapter is built again from them.
* **base-rewriting** (``pissa``, ``pissa_niter_K``, ``olora``, ``corda``, ``lora_ga``): PEFT moves the
  adapter's starting point out of the frozen weights (W_res = W - s·B0·A0), which an adapter directory
  does not carry — and reloading re-runs the initialisation (``pissa_niter_K``'s SVD is randomised), so
  the reloaded model differs. :func:`to_plain_lora` turns the trained model into a plain LoRA of rank
  2r on the original weights (ΔW = s·(B·A - B0·A0) = s·[B, -B0]·[A; A0], PEFT's own conversion) *before*
  the test split is scored, so what is scored, saved and reloaded is the same model.
* ``loftq`` replaces the backbone by its quantized residual, which the adapter cannot carry either:
  refused in one line (:func:`check_init`).
"""

from __future__ import annotations

import itertools
import re

from peftner.errors import OptionError

SIMPLE_INITS = ("default", "gaussian", "orthogonal", "mica")
BASE_REWRITING = ("pissa", "olora", "corda", "lora_ga")  # and pissa_niter_K
DATA_DRIVEN = ("eva", "corda", "lora_ga")
INITS = (*SIMPLE_INITS, "pissa", "pissa_niter_K", "olora", "eva", "corda", "lora_ga", "loftq")
_NITER = re.compile(r"pissa_niter_(\d+)$")


def peft_value(init: str):
    """``--init-lora-weights`` as ``LoraConfig.init_lora_weights`` (``default`` is PEFT's ``True``)."""
    return True if init == "default" else init


def rewrites_base(init: str) -> bool:
    return init in BASE_REWRITING or bool(_NITER.match(init))


def check_init(init: str, use_dora: bool, quantized: bool) -> None:
    """Refuse, in one line, an initialisation that cannot run or cannot be saved exactly."""
    if not (init in INITS and init != "pissa_niter_K" or _NITER.match(init)):
        raise OptionError(f"--init-lora-weights must be one of {', '.join(INITS)} (K: a number of subspace "
                          f"iterations, e.g. pissa_niter_4), got {init!r}")
    if init == "loftq":
        raise OptionError("--init-lora-weights loftq: LoftQ replaces the backbone's weights by their quantized "
                          "residual (with bitsandbytes on CUDA), which an adapter directory cannot carry, so the "
                          "run could not be reloaded exactly; use qlora (a 4-bit backbone with LoRA) instead")
    if rewrites_base(init) and quantized:
        raise OptionError(f"--init-lora-weights {init} moves part of each weight into the adapter, which a quantized "
                          "backbone cannot give back exactly (PEFT warns so); use it with the lora method")
    if rewrites_base(init) and use_dora:
        raise OptionError(f"--init-lora-weights {init} with --use-dora: DoRA's magnitudes are taken from the "
                          "rewritten weights, so the adapter cannot be turned back into one of the original "
                          "weights for saving; use one of them")


# --------------------------------------------------------------------------- the data pass


def _inputs(batch) -> dict:
    from peftner.data.collator import MODEL_INPUTS

    return {k: batch[k] for k in MODEL_INPUTS}


def data_pass(model, lora_config, batches, count: int):
    """Run the data-driven initialisation of ``lora_config`` on ``count`` of ``batches``; returns the model
    (a new PEFT model for CorDA / LoRA-GA, built on the same backbone)."""
    init = lora_config.init_lora_weights
    batches = [_inputs(b) for b in itertools.islice(batches, count)]
    if init == "eva":
        from peft import initialize_lora_eva_weights

        initialize_lora_eva_weights(model, batches, show_progress_bar=False, gather_distributed_inputs=False)
        return model
    from peftner.tuners import get_peft_model

    backbone = model.unload()  # the adapter was only a placeholder: the original modules, head included
    original = snapshot_weights(backbone)  # CorDA and LoRA-GA rewrite the frozen weights
    if init == "corda":
        from peft.tuners.lora.corda import preprocess_corda

        preprocess_corda(backbone, lora_config, run_model=lambda: _one_sentence_at_a_time(backbone, batches))
    else:
        from peft.tuners.lora.loraga import preprocess_loraga

        preprocess_loraga(backbone, lora_config, train_step=lambda: _backward(backbone, batches))
    return remember_starting_point(get_peft_model(backbone, lambda: lora_config, f"init {init}"), original)


def _backward(model, batches):
    for batch in batches:
        model(**batch).loss.backward()


def _one_sentence_at_a_time(model, batches):
    """CorDA's hook reads one sequence per forward (its covariance squeezes the batch axis)."""
    import torch

    with torch.no_grad():
        for batch in batches:
            for ids, mask in zip(batch["input_ids"], batch["attention_mask"]):
                length = int(mask.sum())
                model(input_ids=ids[None, :length], attention_mask=mask[None, :length])


# --------------------------------------------------------------------------- exact saving


def lora_layers(model):
    from peft.tuners.lora import LoraLayer

    return [(name, m) for name, m in model.named_modules() if isinstance(m, LoraLayer)]


def snapshot_weights(model) -> dict:
    """Copies of every linear weight, before an initialisation rewrites some of them."""
    import torch

    return {name: m.weight.detach().clone() for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) or type(m).__name__ == "Conv1D"}


class StartingPoint:
    """The original weights and the adapter's first values of a base-rewriting initialisation."""

    def __init__(self, original: dict, model, adapter: str = "default"):
        self.adapter = adapter
        self.weights, self.initial = {}, {}
        for name, layer in lora_layers(model):
            base_name = name.removeprefix("base_model.model.")
            self.weights[name] = original[base_name]
            self.initial[name] = (layer.lora_A[adapter].weight.detach().clone(),
                                  layer.lora_B[adapter].weight.detach().clone())


def remember_starting_point(model, original: dict):
    """Keep what :func:`to_plain_lora` needs on the PEFT model (not in its state dict)."""
    model.peftner_starting_point = StartingPoint(original, model)
    return model


def to_plain_lora(model):
    """The trained model as a plain LoRA of rank 2r on the original weights (see the module docstring).

    In place; a model without a remembered starting point is returned unchanged.
    """
    import math

    import torch

    point = getattr(model, "peftner_starting_point", None)
    if point is None:
        return model
    adapter = point.adapter
    config = model.peft_config[adapter]
    r, alpha = config.r, config.lora_alpha
    config.r, config.lora_alpha = 2 * r, (alpha * 2 ** 0.5 if config.use_rslora else 2 * alpha)
    config.rank_pattern = {k: 2 * v for k, v in (config.rank_pattern or {}).items()}
    config.alpha_pattern = {k: 2 * v for k, v in (config.alpha_pattern or {}).items()}
    config.init_lora_weights = True  # a plain LoRA now: nothing to initialise on reload
    config.corda_config = config.lora_ga_config = None
    for name, layer in lora_layers(model):
        a0, b0 = point.initial[name]
        a, b = layer.lora_A[adapter].weight, layer.lora_B[adapter].weight
        with torch.no_grad():
            layer.get_base_layer().weight.copy_(point.weights[name])
            new_a = torch.nn.Linear(a.shape[1], 2 * a.shape[0], bias=False, device=a.device, dtype=a.dtype)
            new_b = torch.nn.Linear(2 * b.shape[1], b.shape[0], bias=False, device=b.device, dtype=b.dtype)
            new_a.weight.copy_(torch.cat([a, a0]))
            new_b.weight.copy_(torch.cat([b, -b0], dim=1))
        layer.lora_A[adapter], layer.lora_B[adapter] = new_a, new_b
        layer.r[adapter] = 2 * layer.r[adapter]
        layer.lora_alpha[adapter] = (layer.lora_alpha[adapter] * 2 ** 0.5 if config.use_rslora
                                     else 2 * layer.lora_alpha[adapter])
        # what LoraLayer.update_layer computes on reload from the saved r and alpha
        layer.scaling[adapter] = (layer.lora_alpha[adapter] / math.sqrt(layer.r[adapter]) if config.use_rslora
                                  else layer.lora_alpha[adapter] / layer.r[adapter])
        for p in (*new_a.parameters(), *new_b.parameters()):
            p.requires_grad_(False)
    del model.peftner_starting_point
    return model
