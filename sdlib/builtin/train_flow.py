"""Teaching the built-in UNet flow matching (rectified flow, the SD3/Flux objective), on CPU.

The same UNet, the same data, the same text encoder (frozen) and VAE; only the objective and the
sampler change. The library's objective (`sdlib.training.objective.loss`) with a
`FlowMatchEulerDiscreteScheduler` trains the velocity (`sdlib.processes.flow`):

    x_t = (1 - sigma) x0 + sigma noise,   target v = noise - x0,   timestep t = sigma * 1000,
    sigma = sigmoid(u), u ~ N(0, 1)  (SD3's logit-normal, Esser et al. 2024, sec. 3.1)

The UNet starts from the built-in eps model's weights (a fine-tune: see training/flow-builtin.md
for why not from scratch).

    python -m sdlib.builtin.train_flow --out ~/sdlib-runs/flow --steps 2500 --threads 1
    python -m sdlib.builtin.train_flow --out ~/sdlib-runs/flow --export sdlib/models/builtin-flow

Checkpoints every --every steps in --out (resumed from the newest); --init restarts from an
exported flow folder when the run's checkpoints are gone. Taught in notebooks/10.
"""
import argparse
import json
import time
from functools import partial
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..models.flow import FLOW_SCHEDULER_CONFIG
from . import model
from .train import EMA, LocalAccelerator, _loop, _resume, clip_tokenizer, encode_dataset, load_vae, token_ids, unet_step_loss


def train(args):
    from diffusers import FlowMatchEulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "latents.safetensors"
    if not cache.exists():  # the UNet stage's first `--data` scenes (same seeds), 3 wordings each
        z, ids = encode_dataset(load_vae(args.model), args.data, args.seed)
        save_file({"z": z.contiguous(), "ids": ids.contiguous()}, cache)
    data = load_file(cache)
    if args.threads:  # the data cache above uses every core, training only these
        torch.set_num_threads(args.threads)
    unet = UNet2DConditionModel.from_pretrained(Path(args.init or args.model) / "unet", torch_dtype=torch.float32)
    text = CLIPTextModel.from_pretrained(Path(args.model) / "text_encoder", torch_dtype=torch.float32)
    text.requires_grad_(False).eval()  # the eps model's text encoder, shared by both models
    unet.requires_grad_(True).train()
    scale = json.loads((Path(args.model) / "vae" / "config.json").read_text())["scaling_factor"]
    opt = torch.optim.AdamW(unet.parameters(), lr=args.lr)
    ema = EMA({"unet": unet}, args.ema) if args.ema else None
    start = _resume(args.out, {"unet": unet, **(ema.models if ema else {})}, opt)
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(FLOW_SCHEDULER_CONFIG)
    empty = token_ids(clip_tokenizer(), [""])[0]  # (77,): for CFG dropout
    loss_fn = partial(unet_step_loss, unet, text, scheduler, data["z"] * scale, data["ids"], empty,
                      args.batch, args.drop, args.seed)
    _loop(args, LocalAccelerator(), start, {"unet": unet}, opt, loss_fn, ema)


def export(run, folder, dtype=torch.float16):
    """The run's newest UNet (the EMA copy when kept) and the flow scheduler's config, as the
    `unet/` and `scheduler/` of a diffusers folder (safetensors); the other parts are the built-in
    model's (`sdlib.models.flow.load_flow`)."""
    from diffusers import UNet2DConditionModel
    from diffusers.utils import logging

    logging.set_verbosity_error()  # "modules that should be kept in float32": there are none
    folder = Path(folder)
    ck = sorted(Path(run).glob("step*"))[-1]
    name = "ema_unet" if (ck / "ema_unet.safetensors").exists() else "unet"
    unet = UNet2DConditionModel(**model.UNET_CONFIG)
    unet.load_state_dict(load_file(ck / f"{name}.safetensors"))
    torch.nn.Module.to(unet, dtype=dtype).save_pretrained(folder / "unet", safe_serialization=True)
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(FLOW_SCHEDULER_CONFIG, indent=2))
    return folder


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/flow", help="run folder (checkpoints, loss.csv, latent cache)")
    ap.add_argument("--model", default=str(model.SHIPPED), help="the built-in (eps) model's folder")
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every", type=int, default=100, help="checkpoint every N steps")
    ap.add_argument("--data", type=int, default=6000, help="number of training scenes (3 wordings each)")
    ap.add_argument("--drop", type=float, default=0.1, help="fraction of captions emptied (for CFG)")
    ap.add_argument("--ema", type=float, default=0.995, help="EMA decay (0: none)")
    ap.add_argument("--until", type=int, default=0, help="stop (with a checkpoint) at this step")
    ap.add_argument("--minutes", type=float, default=0, help="fit --steps to this wall-clock budget")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--init", default=None, help="start from this exported flow folder (its unet/)")
    ap.add_argument("--export", default=None, help="write the newest checkpoint as a flow model folder here")
    args = ap.parse_args(argv)
    args.started, args.stage = time.monotonic(), "flow"
    if args.export:
        print(export(args.out, args.export))
        return
    train(args)


if __name__ == "__main__":
    main()
