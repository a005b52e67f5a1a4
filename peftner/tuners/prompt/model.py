"""PEFT's token-classification model with the virtual-token positions taken out again.

PEFT 0.21 prepends the prompt to the input embeddings for ``TOKEN_CLS`` but leaves the labels as
they are, so the base model's loss fails on mismatched lengths and the logits have
``num_virtual_tokens`` extra leading rows. This subclass calls PEFT without labels, drops the
virtual rows from the logits (and hidden states/attentions' query axis) and computes the loss on
real positions only. It adds no state, so ``save_pretrained`` writes a standard PEFT adapter.

A plain PEFT user who loads that adapter with ``PeftModel.from_pretrained`` gets
``PeftModelForTokenClassification``: call it without ``labels`` and use
``logits[:, n:]`` where ``n`` is ``num_virtual_tokens`` from ``adapter_config.json``; or wrap the
loaded model with :meth:`PromptTokenClassifier.from_peft_model`.
"""

from __future__ import annotations

from torch import nn
from peft import PeftModelForTokenClassification

from peftner.tuners import virtual_positions


class PromptTokenClassifier(PeftModelForTokenClassification):
    """Prompt tuning for token classification: one logit row per input position, loss on those only."""

    @classmethod
    def from_peft_model(cls, model: PeftModelForTokenClassification) -> "PromptTokenClassifier":
        """View a loaded prompt-tuning model through this class (same object, same state)."""
        if not isinstance(model, PeftModelForTokenClassification) or not model.active_peft_config.is_prompt_learning:
            raise TypeError("expected a PeftModelForTokenClassification with a prompt-learning adapter")
        model.__class__ = cls
        return model

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None,
                output_attentions=None, output_hidden_states=None, return_dict=None, **kwargs):
        outputs = super().forward(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                                  labels=None, output_attentions=output_attentions,
                                  output_hidden_states=output_hidden_states, return_dict=True, **kwargs)
        n = virtual_positions(self)
        outputs.logits = outputs.logits[:, n:]
        if outputs.get("hidden_states") is not None:
            outputs.hidden_states = tuple(h[:, n:] for h in outputs.hidden_states)
        if outputs.get("attentions") is not None:  # keep the keys: real tokens do attend to the prompt
            outputs.attentions = tuple(a[:, :, n:] for a in outputs.attentions)
        if labels is not None:
            logits = outputs.logits
            outputs.loss = nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), labels.to(logits.device).reshape(-1), ignore_index=-100)
        return outputs if return_dict is not False else outputs.to_tuple()
