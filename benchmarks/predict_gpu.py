"""Predicted GPU times per notebook, until measured ones exist: writes sdlib/data/gpu_predictions.json.

    .venv/bin/python benchmarks/predict_gpu.py            # all notebooks (about 15 minutes on one core)
    .venv/bin/python benchmarks/predict_gpu.py 00 07      # some of them (the others' rows are kept)

Each notebook is executed on the SD v1.4 twin (`sdlib.testing.twins`: real SD v1.4's configs,
narrower, at 64 px) with its real step counts, so it takes the SD branches a GPU run takes; a
counting cell put first records every call to the UNet and a ControlNet (and every cached step of notebook 08's step
caching, which runs only the UNet's shallow path: priced at its share of a full call), the VAE's
encoder and decoder and the text encoder: its batch, its size, and whether it is a training call
(gradients flow through it). Each
call is then priced at real SD v1.4's size (512 px) in FLOPs, counted on PyTorch's meta device
(no weights, no arithmetic: `torch.utils.flop_counter`); calls of the built-in models a notebook
loads beside SD (notebook 10's eps/flow pair, small in every world) are not priced. Explorer cells (sliders) are left out, as
are cells that run only on a GPU (08's fp16 / torch.compile comparison). `sdlib.speed` turns the
counts into seconds (`predicted_minutes`) and 07's training into time and memory
(`predict_training`), with the assumptions it prints. Predictions, not measurements: on a GPU,
measure with `HF_HUB_OFFLINE=0 python benchmarks/benchmark.py --model CompVis/stable-diffusion-v1-4 --device cuda`.
The notebooks in `speed.NOT_PREDICTED` (notebook 11: SD3 medium on a GPU) are not priced; the file
says why.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import nbformat
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from execute_notebooks import ENV  # noqa: E402  (the environment notebooks are executed in)

from sdlib import speed  # noqa: E402
from sdlib.testing import twins  # noqa: E402

UNET_INPUTS = (4, 5, 9)  # latents; + a depth map (notebook 09); + a mask and its picture (inpainting)
TWIN, TWIN_LATENT = "sd-v1-4", 8  # the twin's latent side: 64 px pictures, priced at 512 px
REAL = twins.TWINS[TWIN]
SCALE = REAL["unet"]["sample_size"] // TWIN_LATENT  # 8: every side x 8

COUNTING_CELL = r'''
# Put first by benchmarks/predict_gpu.py: count every call to the model's parts.
import json, os, torch
from diffusers import UNet2DConditionModel
from diffusers.models.autoencoders.vae import Decoder, Encoder
from transformers import CLIPTextModel
_CALLS = {}
def _count(cls, kind):
    forward = cls.forward
    def counted(self, *args, **kwargs):
        if getattr(self, "_not_priced", False):  # a part of the built-in pair (notebook 10): not SD's size
            return forward(self, *args, **kwargs)
        x = args[0] if args else next(iter(kwargs.values()))  # sample, latents, pixels or input_ids
        tensors = [a for a in (*args, *kwargs.values()) if torch.is_tensor(a)]
        train = torch.is_grad_enabled() and (any(t.requires_grad for t in tensors)
                                             or any(p.requires_grad for p in self.parameters()))
        key = json.dumps([kind, list(x.shape[1:]), bool(train)])
        _CALLS[key] = _CALLS.get(key, 0) + x.shape[0]  # items: calls x batch
        return forward(self, *args, **kwargs)
    cls.forward = counted
from diffusers import ControlNetModel
for _cls, _kind in ((UNet2DConditionModel, "unet"), (ControlNetModel, "controlnet"), (Encoder, "vae_encode"),
                    (Decoder, "vae_decode"), (CLIPTextModel, "text_encoder")):
    _count(_cls, _kind)
from sdlib.sampling.step_cache import CachedUNet  # a cached step runs the UNet's shallow path only
_shallow = CachedUNet._shallow
def _counted_shallow(self, sample, timestep, text_emb):
    key = json.dumps([f"unet_shallow_{self.branch}", list(sample.shape[1:]), False])
    _CALLS[key] = _CALLS.get(key, 0) + sample.shape[0]
    return _shallow(self, sample, timestep, text_emb)
CachedUNet._shallow = _counted_shallow
import sdlib
_load_sd = sdlib.load_sd
def _marked(model=None, *args, **kwargs):  # the built-in pair that notebook 10 loads in every world
    sd = _load_sd(model, *args, **kwargs)
    if sd.name in ("builtin", "builtin-flow"):
        for m in (sd.unet, sd.text_encoder, sd.vae.encoder, sd.vae.decoder):
            m._not_priced = True
    return sd
sdlib.load_sd = _marked
'''
DUMP_CELL = "json.dump(_CALLS, open(os.environ['PREDICT_OUT'], 'w'))"
RUN = ("import sys, nbformat; from nbclient import NotebookClient; "
       "nb = nbformat.read(sys.argv[1], as_version=4); "
       "NotebookClient(nb, timeout=3000, kernel_name='python3', "
       "resources={'metadata': {'path': sys.argv[2]}}).execute()")


def count_calls(notebook, folder, work):
    """{(kind, shape without batch, train): items} of one notebook executed on the twin in `folder`."""
    nb = nbformat.read(notebook, as_version=4)
    nb.cells = ([nbformat.v4.new_code_cell(COUNTING_CELL)]
                + [c for c in nb.cells if not (c.cell_type == "code" and "explorer(" in c.source)]
                + [nbformat.v4.new_code_cell(DUMP_CELL)])
    src, out = work / notebook.name, work / f"{notebook.stem}.json"
    nbformat.write(nb, src)
    env = {**os.environ, **ENV, "SDLIB_MODEL": str(folder), "PREDICT_OUT": str(out)}
    for quick in ("SDLIB_SAMPLE_STEPS", "SDLIB_TRAIN_STEPS"):  # the real counts
        env.pop(quick, None)
    run = subprocess.run([sys.executable, "-c", RUN, str(src), str(notebook.parent)], env=env,
                         capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"{notebook.name} failed on the twin:\n{run.stderr[-3000:]}")
    calls = {}
    for key, n in json.loads(out.read_text()).items():
        kind, shape, train = json.loads(key)
        calls[kind, tuple(shape), train] = n
    return calls


# ------------------------------------------------------------------ pricing at real SD v1.4's size
def real_parts():
    """SD v1.4's UNet, VAE and text encoder on the meta device, fp16: shapes without weights."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from diffusers import ControlNetModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**REAL["unet"]).half()
        return dict(unet=unet, vae=AutoencoderKL(**REAL["vae"]).half(),
                    controlnet=ControlNetModel.from_unet(unet, load_weights_from_unet=False).half(),
                    text_encoder=CLIPTextModel(CLIPTextConfig(**REAL["text"])).half())


def _meta(*shape):
    return torch.empty(*shape, device="meta", dtype=torch.float16)


@torch.no_grad()
def tflop_per_item(parts, kind, shape):
    """TFLOP of one item (batch 1) of a `kind` call whose input has `shape` (no batch) on the twin,
    priced at real size (sides x SCALE)."""
    from torch.utils.flop_counter import FlopCounterMode

    big = [shape[0], *(s * SCALE for s in shape[1:])] if kind != "text_encoder" else list(shape)
    unet, vae, te = parts["unet"], parts["vae"], parts["text_encoder"]
    if kind in ("unet", "controlnet"):
        big[0] = REAL["unet"]["in_channels"]  # a depth UNet's extra input channel: conv_in's share, left out
    if kind.startswith("unet_shallow_"):  # a cached step: the shallow path's share of a full call
        return shallow_tflop_per_item(unet, big, int(kind.rsplit("_", 1)[1]))
    call = {"unet": lambda: unet(_meta(1, *big), torch.tensor(500, device="meta"),
                                 encoder_hidden_states=_meta(1, 77, REAL["unet"]["cross_attention_dim"])),
            "controlnet": lambda: parts["controlnet"](_meta(1, *big), torch.tensor(500, device="meta"),
                                                      encoder_hidden_states=_meta(1, 77, REAL["unet"]["cross_attention_dim"]),
                                                      controlnet_cond=_meta(1, 3, *(8 * b for b in big[1:]))),
            "vae_encode": lambda: vae.encoder(_meta(1, *big)),
            "vae_decode": lambda: vae.decoder(_meta(1, *big)),
            "text_encoder": lambda: te(torch.zeros(1, *big, dtype=torch.long, device="meta"))}[kind]
    counter = FlopCounterMode(display=False)
    with counter:
        call()
    return counter.get_total_flops() / 1e12


@torch.no_grad()
def shallow_tflop_per_item(unet, shape, branch):
    """TFLOP of one cached step (`sdlib.sampling.step_cache`, branch `branch`) of one latent: a full
    call's FLOPs by part on the meta device, times the shallow path's share (`step_cache.shallow_share`)."""
    from torch.utils.flop_counter import FlopCounterMode

    from sdlib.measure.speed import unet_parts
    from sdlib.sampling.step_cache import shallow_share

    counter = FlopCounterMode(display=False)
    with counter:
        unet(_meta(1, *shape), torch.tensor(500, device="meta"),
             encoder_hidden_states=_meta(1, 77, REAL["unet"]["cross_attention_dim"]))
    counts, root = counter.get_flop_counts(), type(unet).__name__
    flops = {name: sum(counts.get(f"{root}.{name}", {}).values()) for name in unet_parts(unet)}
    flops["total"] = counter.get_total_flops()
    return shallow_share(flops, branch) * flops["total"] / 1e12


class _FusedAttention(torch.autograd.Function):
    """What fused (flash / memory-efficient) attention keeps for the backward pass: q, k, v, the
    output and one log-sum-exp per query, not the (N x N) attention matrix."""
    @staticmethod
    def forward(ctx, q, k, v):
        out = torch.empty_like(q)
        ctx.save_for_backward(q, k, v, out, torch.empty(q.shape[:-1], device=q.device, dtype=torch.float32))
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, *_ = ctx.saved_tensors
        return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def saved_gb(unet, batch):
    """GB the autograd graph keeps between a training call's forward and backward pass, fp16,
    batch `batch` at 512 px, with fused attention (diffusers' default on a GPU)."""
    saved = {}

    def pack(t):
        if not isinstance(t, torch.nn.Parameter):
            saved[id(t)] = t.numel() * t.element_size()
        return t

    sdpa = F.scaled_dot_product_attention
    F.scaled_dot_product_attention = lambda q, k, v, *a, **kw: _FusedAttention.apply(q, k, v)
    try:
        side = REAL["unet"]["sample_size"]
        text_emb = _meta(batch, 77, REAL["unet"]["cross_attention_dim"]).requires_grad_()  # as textual inversion
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            unet(_meta(batch, 4, side, side), torch.tensor(500, device="meta"), encoder_hidden_states=text_emb)
    finally:
        F.scaled_dot_product_attention = sdpa
    return sum(saved.values()) / 1e9


def write(result):
    result["notebooks"] = dict(sorted(result["notebooks"].items()))
    speed.GPU_PREDICTIONS.write_text(json.dumps(result, indent=1) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", help="notebook numbers (default: all)")
    args = ap.parse_args()
    notebooks = [nb for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) if nb.stem not in speed.NOT_PREDICTED]
    kept = {nb.stem for nb in notebooks}  # rows of notebooks that no longer exist are dropped
    if args.notebooks:
        notebooks = [nb for nb in notebooks if nb.name[:2] in args.notebooks]
    old = speed.gpu_predictions() if speed.GPU_PREDICTIONS.exists() else {}
    parts = real_parts()
    params = {k: sum(p.numel() for p in m.parameters()) for k, m in parts.items() if k != "controlnet"}  # SD v1.4 itself
    one, two = saved_gb(parts["unet"], 1), saved_gb(parts["unet"], 2)
    price = {}
    result = dict(
        model=REAL["hub_id"], image_size=REAL["image_size"], dtype="float16",
        weights_gb=round(sum(params.values()) * 2 / 1e9, 3),
        params_millions={k: round(v / 1e6, 1) for k, v in params.items()},
        tflop={"unet": tflop_per_item(parts, "unet", [4, TWIN_LATENT, TWIN_LATENT]),
               "vae_decode": tflop_per_item(parts, "vae_decode", [4, TWIN_LATENT, TWIN_LATENT]),
               "vae_encode": tflop_per_item(parts, "vae_encode", [3, 8 * TWIN_LATENT, 8 * TWIN_LATENT]),
               "text_encoder": tflop_per_item(parts, "text_encoder", [77])},
        train_saved_gb=dict(fixed=round(2 * one - two, 3), per_item=round(two - one, 3)),
        notebooks={**{nb.stem: dict(tflop=0.0, items={}) for nb in notebooks}, **{k: v for k, v in old.get("notebooks", {}).items() if k in kept}},
        command="python benchmarks/predict_gpu.py")  # a new notebook's row exists (0) before it is counted: 08 reads the rows
    result["tflop"] = {k: round(v, 4) for k, v in result["tflop"].items()}
    write(result)
    with tempfile.TemporaryDirectory() as tmp:
        folder = twins.build_twin(TWIN, Path(tmp) / "twin", sample_size=TWIN_LATENT, text_layers=2)
        for nb in notebooks:
            began = time.perf_counter()
            calls = count_calls(nb, folder, Path(tmp))
            tflop, items = 0.0, Counter()
            for (kind, shape, train), n in calls.items():
                if kind in ("unet", "controlnet") and shape[0] not in UNET_INPUTS:
                    continue  # notebook 09's x4 upscaler is a small twin on every device: not priced
                key = (kind, tuple(shape))
                if key not in price:
                    price[key] = tflop_per_item(parts, kind, shape)
                tflop += n * price[key] * (speed.TRAIN_FACTOR if train else 1)
                items[f"{kind}{' (training)' if train else ''}"] += n
            result["notebooks"][nb.stem] = dict(tflop=round(tflop, 1), items=dict(sorted(items.items())))
            write(result)  # after each notebook: the next one may read the rows (08 does)
            print(f"{nb.stem}: {tflop:8.1f} TFLOP  {dict(items)}  ({time.perf_counter() - began:.0f} s here)",
                  flush=True)
    print(f"wrote {speed.GPU_PREDICTIONS.relative_to(ROOT)}\n")
    print(speed.prediction_assumptions())
    for name, row in speed.predicted_minutes().items():
        print(f"  {name:24} " + "  ".join(f"{gpu} {m:6.1f} min" for gpu, m in row.items()))


if __name__ == "__main__":
    main()
