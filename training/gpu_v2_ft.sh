#!/bin/bash
# Built-in v2, second GPU call: fine-tune the shipped UNet + text encoder (from its fp16 weights, a
# fresh optimiser and EMA) on new scenes (seed 1) with half of them two-object scenes, the row the
# first call missed. Run from the repo root on the device machine, with .whl carried:
#   bash training/gpu_v2_ft.sh MINUTES    # the fine-tuned UNet + text encoder as tar parts in $OUT
set -u
M=${1:-3}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
R=/root/runs; mkdir -p $R
python3 -m sdlib.builtin.train unet --out $R/unet_ft --init sdlib/models/builtin --vae sdlib/models/builtin \
    --seed 1 --two-objects 0.5 --data 40000 --batch 128 --lr 3e-4 --steps 20000 --minutes $M --every 1000 > $OUT/unet_ft.log 2>&1
python3 -m sdlib.builtin.train export --vae sdlib/models/builtin --unet $R/unet_ft --to $R/model || exit 1
(cd $R/model && tar cf - unet text_encoder) | split -b 15m - $OUT/ft.tar.
cp $R/unet_ft/loss.csv $OUT/unet_ft_loss.csv
ls -la $OUT
