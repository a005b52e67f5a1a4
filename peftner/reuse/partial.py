"""Saving and loading only what a non-PEFT method trained (the linear probe, BitFit).

``head`` and ``bitfit`` train a few tensors of an otherwise frozen model; saving the whole model
would make their "adapter on disk" the size of the backbone. They write
``trained_parameters.safetensors`` instead: exactly the parameters that trained (head, and biases
for BitFit), by their names in the token-classification model. Loading is the base model (checked
against the recorded fingerprint) with these tensors copied in. The file is deliberately not
called ``model.safetensors``: plain ``from_pretrained`` on the directory fails instead of
quietly initialising the missing weights at random.
"""

from __future__ import annotations

from pathlib import Path

from peftner.errors import PeftnerError
from peftner.methods.base import trainable_state

TRAINED_FILE = "trained_parameters.safetensors"


def save_trained(model, directory) -> Path:
    """Write ``directory/trained_parameters.safetensors``; returns its path."""
    from safetensors.torch import save_file

    path = Path(directory) / TRAINED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(model), str(path), metadata={"format": "pt"})
    return path


def check_fits(state: dict, model, source) -> None:
    """Every saved tensor must name a weight of ``model`` with the same shape (else one-line error)."""
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise PeftnerError(f"{source}: weights the base model does not have ({', '.join(unknown[:3])}); "
                           "trained on another architecture?")
    wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        raise PeftnerError(f"{source}: {wrong[0]} has shape {tuple(state[wrong[0]].shape)}, the base model's "
                           f"{tuple(own[wrong[0]].shape)}")


def load_trained(model, directory):
    """Copy ``directory/trained_parameters.safetensors`` into ``model`` (the base); returns the model."""
    from safetensors.torch import load_file

    path = Path(directory) / TRAINED_FILE
    state = load_file(str(path))
    check_fits(state, model, path)
    model.load_state_dict(state, strict=False)
    return model
