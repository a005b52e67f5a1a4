"""Evaluate fixed weights on a data file over however many processes were launched; dump the result.

Usage: accelerate launch ... eval_dump.py MODEL_DIR DATA_FILE OUT_JSON EVAL_BATCH_SIZE
"""

import json
import sys

import torch
from accelerate import Accelerator
from seqeval.metrics.sequence_labeling import get_entities

from peftner.data import LabelSchema, encode_sentences, read_file
from peftner.data.collator import PaddingCollator
from peftner.models.loading import load_token_classifier, load_tokenizer
from peftner.training.loop import EvalSet, Scorer, evaluate_split, make_eval_loader

model_dir, data_file, out_json, batch_size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
accelerator = Accelerator(cpu=True)
sentences = read_file(data_file)
schema = LabelSchema.from_sentences(sentences, "IOB2")
tokenizer = load_tokenizer(model_dir)
torch.manual_seed(0)  # the same random head on every process and in every launch
model = load_token_classifier(model_dir, schema.id2label)
features = encode_sentences([s.tokens for s in sentences], [s.tags for s in sentences], tokenizer,
                            schema.label2id, 64)
eval_set = EvalSet(features, [s.tags for s in sentences])
model, loader = accelerator.prepare(model, make_eval_loader(eval_set, batch_size, PaddingCollator(tokenizer.pad_token_id)))
scores, predicted = evaluate_split(model, loader, accelerator, eval_set, Scorer(schema.id2label, schema.metric))
if accelerator.is_main_process:
    with open(out_json, "w") as f:
        json.dump({"f1": scores["f1"], "precision": scores["precision"], "recall": scores["recall"],
                   "predicted_entities": sum(len(get_entities(p)) for p in predicted),
                   "gold_entities": sum(len(get_entities(s.tags)) for s in sentences),
                   "predicted": predicted, "num_processes": accelerator.num_processes}, f)
