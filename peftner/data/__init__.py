"""Data: readers, label schema, subword alignment and batching. Knows nothing of methods."""

from peftner.data.alignment import WordSlots, encode_sentences, max_sequence_length
from peftner.data.corpus import Corpus, load_corpus
from peftner.data.labels import LabelSchema, detect_scheme
from peftner.data.readers import Sentence, from_hf_dataset, read_conll, read_file, read_jsonl

__all__ = ["Corpus", "LabelSchema", "Sentence", "detect_scheme", "encode_sentences",
           "from_hf_dataset", "load_corpus", "max_sequence_length", "read_conll", "read_file",
           "read_jsonl", "WordSlots"]
