#!/usr/bin/env bash
# GPU check, for a machine with one CUDA GPU (e.g. the project's lent device): full fine-tuning, LoRA
# and int8+LoRA on the embedded defaults with bf16 autocast, 2 epochs each, then the comparison table
# of those runs (tokens/s, peak CUDA memory) in benchmarks/results/gpu_check/.
#   bash benchmarks/gpu_check.sh            # about 3-5 minutes on one recent GPU, after installation
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
