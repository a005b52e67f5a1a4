"""Batching: dynamic padding and length-grouped sampling.

Padding goes only to the longest sequence of each batch (never to the model maximum). The
length-grouped sampler shuffles, then sorts each "mega-batch" of ``batch_size * 50`` features by
length, so batches hold sequences of similar length and carry little padding, while the order
still changes from epoch to epoch (seeded: the same seed gives the same batches).
"""

from __future__ import annotations

import torch

from peftner.data.alignment import IGNORE_INDEX

MODEL_INPUTS = ("input_ids", "attention_mask", "labels")


class PaddingCollator:
    """Pad ``input_ids``/``attention_mask``/``labels`` (and the ``word_index`` map) to the batch maximum."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        length = max(len(f["input_ids"]) for f in features)
        pads = {"input_ids": self.pad_token_id, "attention_mask": 0, "labels": IGNORE_INDEX, "word_index": -1,
                "subword_word": -1}
        batch = {}
        for key, pad in pads.items():
            if key in features[0]:
                batch[key] = torch.tensor([f[key] + [pad] * (length - len(f[key])) for f in features],
                                          dtype=torch.long)
        if "example_id" in features[0]:
            batch["example_id"] = torch.tensor([f["example_id"] for f in features], dtype=torch.long)
        return batch


class LengthGroupedBatchSampler(torch.utils.data.Sampler):
    """Batches of similar-length features, reshuffled each epoch from ``seed + epoch``."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int = 0, mega_batch_mult: int = 50):
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.mega = batch_size * mega_batch_mult
        self.epoch = 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def __len__(self):
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        batches = []
        for i in range(0, len(order), self.mega):
            group = sorted(order[i:i + self.mega], key=lambda j: -self.lengths[j])
            batches += [group[k:k + self.batch_size] for k in range(0, len(group), self.batch_size)]
        # Shuffle batch order too, so the longest batches do not always come first in a mega-batch.
        for b in torch.randperm(len(batches), generator=generator).tolist():
            yield batches[b]


def length_sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches: longest first, so padding is minimal and memory peaks at the start."""
    order = sorted(range(len(lengths)), key=lambda j: -lengths[j])
    return [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
