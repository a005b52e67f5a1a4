"""The plain Transformers recipe peftner is compared against.

This is what users would otherwise write, following the Hugging Face token-classification
tutorial: tokenise with ``truncation=True``, label the first subword of each word (-100 elsewhere),
``DataCollatorForTokenClassification``, ``Trainer`` with the tutorial's hyperparameters
(learning rate 2e-5, batch 16, weight decay 0.01, no warm-up) and no model selection. Scores use
peftner's metric on the same word-level split, so the numbers are comparable.
"""

from __future__ import annotations

import time

import numpy as np
import torch


def tokenize_first_subword(sentences, tokenizer, label2id):
    encoding = tokenizer([s.tokens for s in sentences], is_split_into_words=True, truncation=True)
    rows = []
    for i, sentence in enumerate(sentences):
        labels, previous = [], None
        for word in encoding.word_ids(i):
            labels.append(-100 if word is None or word == previous else label2id[sentence.tags[word]])
            previous = word
        rows.append({"input_ids": encoding["input_ids"][i], "attention_mask": encoding["attention_mask"][i],
                     "labels": labels})
    return rows


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def run_trainer(corpus, model_path: str, output_dir: str, epochs: int, seed: int = 42,
                learning_rate: float = 2e-5, batch_size: int = 16, weight_decay: float = 0.01,
                group_by_length: bool = False, score_dev: bool = False) -> dict:
    """Train with ``transformers.Trainer`` and score the test split (and dev: ``score_dev``); returns F1
    and speed."""
    from transformers import (AutoModelForTokenClassification, AutoTokenizer,
                              DataCollatorForTokenClassification, Trainer, TrainingArguments, set_seed)

    set_seed(seed)
    schema = corpus.schema
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForTokenClassification.from_pretrained(
        model_path, num_labels=len(schema.labels), id2label=schema.id2label, label2id=schema.label2id)
    train_rows = tokenize_first_subword(corpus.train, tokenizer, schema.label2id)
    test_rows = tokenize_first_subword(corpus.test, tokenizer, schema.label2id)
    args = TrainingArguments(
        output_dir=output_dir, num_train_epochs=epochs, learning_rate=learning_rate,
        per_device_train_batch_size=batch_size, per_device_eval_batch_size=batch_size,
        weight_decay=weight_decay, seed=seed, save_strategy="no", eval_strategy="no",
        report_to="none", logging_strategy="no", disable_tqdm=True,
        train_sampling_strategy="group_by_length" if group_by_length else "random",
    )
    trainer = Trainer(model=model, args=args, train_dataset=_ListDataset(train_rows),
                      data_collator=DataCollatorForTokenClassification(tokenizer))
    started = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - started
    # transformers 5 also length-groups *evaluation* under group_by_length, which would reorder the
    # predictions; score in dataset order.
    trainer.args.train_sampling_strategy = "random"
    scores = score_split(trainer, corpus.test, test_rows, schema)
    dev = score_split(trainer, corpus.validation, tokenize_first_subword(corpus.validation, tokenizer, schema.label2id),
                      schema) if score_dev else None
    train_tokens = epochs * sum(len(r["input_ids"]) for r in train_rows)
    return {"recipe": "transformers-trainer" + ("+group_by_length" if group_by_length else ""),
            "test_f1": scores["f1"], "test_precision": scores["precision"], "test_recall": scores["recall"],
            "train_seconds": train_seconds, "train_tokens_per_second": train_tokens / train_seconds,
            "learning_rate": learning_rate, "batch_size": batch_size, "epochs": epochs, "seed": seed,
            **({"dev_f1": dev["f1"]} if dev else {})}


def score_split(trainer, sentences, rows, schema) -> dict:
    """peftner's metric on the Trainer's predictions for one split (first-subword labels)."""
    from peftner.metrics import score

    output = trainer.predict(_ListDataset(rows))
    predictions = np.argmax(output.predictions, axis=-1)
    predicted = []
    for row, labels in zip(predictions, output.label_ids):
        predicted.append([schema.id2label[int(p)] for p, gold in zip(row, labels) if gold != -100])
    # Truncation could have cut words off; score them as "O" so nothing is silently dropped.
    predicted = [p + ["O"] * (len(s.tags) - len(p)) for p, s in zip(predicted, sentences)]
    return score(predicted, [s.tags for s in sentences], metric=schema.metric)
