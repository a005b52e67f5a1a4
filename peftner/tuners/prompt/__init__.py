"""Prompt tuning for token classification: PEFT's prompt tuning with the virtual positions removed again."""

from .model import PromptTokenClassifier

__all__ = ["PromptTokenClassifier"]
