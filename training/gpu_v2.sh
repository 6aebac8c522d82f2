#!/bin/bash
# Built-in v2 on one GPU, in one run of at most 10 minutes: the UNet + text encoder
# (on the step-2400 VAE's frozen encoder) and, beside it on the same GPU, the decoder-only stage at
# 128 px; both fit their step counts to the budget (--minutes), then one fp16 export.
# Run from the repo root on the device machine, with .whl (diffusers) carried:
#   bash training/gpu_v2.sh MINUTES VAE   # results under $OUT (the model as tar parts, logs, losses)
# VAE: the VAE stage's run folder or an exported folder; the shipped v2 used the step-2400 VAE as
# exported in commit cbbf6a5 (`git show cbbf6a5:training/builtin-v2-wip/...`, carried).
# Continue on a warm machine: the same command resumes from /root/runs.
set -u
M=${1:-8.3}
V=${2:-runs/vae}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
R=/root/runs; mkdir -p $R
python3 -m sdlib.builtin.train decoder --out $R/decoder --vae $V --batch 32 --lr 3e-4 \
    --steps 20000 --minutes $M --workers 10 --every 500 > $OUT/decoder.log 2>&1 &
python3 -m sdlib.builtin.train unet --out $R/unet --vae $V --data 80000 --batch 128 \
    --lr 1e-3 --steps 60000 --minutes $M --every 1000 > $OUT/unet.log 2>&1
wait
grep -h "minutes" $OUT/*.log
python3 -m sdlib.builtin.train export --vae $R/decoder --unet $R/unet --to $R/model || exit 1
(cd $R/model && tar cf - .) | split -b 15m - $OUT/model.tar.
cp $R/unet/loss.csv $OUT/unet_loss.csv; cp $R/decoder/loss.csv $OUT/decoder_loss.csv
ls -la $OUT
