"""Teaching the built-in model to follow a control map, two ways, on CPU, with control maps drawn
exactly from the scenes (`control_maps`) and the library's objective (`sdlib.training.objective.loss`):

- `--method controlnet`: the UNet and the text encoder frozen, a trainable copy of the UNet's
  encoder (`ControlNetModel.from_unet`, Zhang et al. 2023) steering it
  (`sdlib.conditioning.control.Controlled`);
- `--method concat`: SD 2's depth-to-image way: the UNet's first convolution widened by one input
  channel (zero weights: `sdlib.conditioning.channels.widen_conv_in`) and the whole UNet
  fine-tuned with the map at latent size beside the latents, rescaled per picture to [-1, 1] as
  the depth pipeline does (`channels.rescaled_depth`; with one object the rescaled depth map and
  the rescaled mask are the same map).

    python -m sdlib.builtin.train_control --out ~/sdlib-runs/controlnet-mask --kind mask --steps 4000
    python -m sdlib.builtin.train_control --out ... --export sdlib/models/builtin-controlnet-mask

Checkpoints every --every steps in --out (resumed from the newest); --init restarts from an
exported ControlNet folder when the run's checkpoints are gone.
"""
import argparse
import json
import time
from functools import partial
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..conditioning.channels import Concatenated, rescaled_depth, widen_conv_in
from ..conditioning.control import Controlled
from ..images import to_tensor, to_vae_range
from ..training import objective
from . import control_maps, model
from .train import EMA, LocalAccelerator, _loop, _resume, clip_tokenizer, load_vae, step_seed, token_ids

SEED_DATA = 9_000_000  # the control scenes' own seeds, apart from the UNet stage's


@torch.no_grad()
def encode_control_dataset(vae, n, seed, kind, batch=64):
    """Latents (unscaled means, (n, 4, h, w)), token ids (n, 77) and control maps (n, H, W) uint8 of
    n control scenes (`control_maps.make_control_batch`)."""
    tok = clip_tokenizer()
    zs, ids, maps = [], [], []
    for k in range(0, n, batch):
        imgs, caps, _, cond = control_maps.make_control_batch(min(batch, n - k), step_seed(seed, k, SEED_DATA),
                                                              model.IMAGE_SIZE, "train", kind)
        zs.append(vae.encode(to_vae_range(to_tensor(imgs))).latent_dist.mean)
        ids.append(token_ids(tok, caps))
        maps.append((cond[:, 0] * 255).round().to(torch.uint8))
    return torch.cat(zs), torch.cat(ids), torch.cat(maps)


def control_step_loss(steer, text, scheduler, x0_all, ids, maps, empty, batch, drop, seed, step):
    """The loss at `step`: a batch of scaled latents with their captions (about `drop` of them
    emptied, so the model also learns to follow the map in the unconditional predictions, as the
    ControlNet paper drops half) and their control maps; the objective on `steer(maps)`, the
    denoiser that reads them."""
    g = torch.Generator().manual_seed(step_seed(seed, step))
    idx = torch.randint(0, len(x0_all), (batch,), generator=g)
    x0 = x0_all[idx]  # (B, 4, h, w)
    tok = ids[idx].clone()
    tok[torch.rand(batch, generator=g) < drop] = empty
    cond = (maps[idx].float() / 255)[:, None].expand(-1, 3, -1, -1)  # (B, 3, H, W)
    noise = torch.randn(x0.shape, generator=g)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=g)
    with torch.no_grad():
        emb = text(tok)[0]  # (B, 77, D): the frozen text encoder
    return objective.loss(steer(cond), scheduler, x0, emb, t, noise)


def train(args):
    from diffusers import ControlNetModel, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "data.safetensors"
    if not cache.exists():
        z, ids, maps = encode_control_dataset(load_vae(args.model), args.data, args.seed, args.kind)
        save_file({"z": z.contiguous(), "ids": ids.contiguous(), "maps": maps.contiguous()}, cache)
    data = load_file(cache)
    unet = UNet2DConditionModel.from_pretrained(Path(args.model) / "unet", torch_dtype=torch.float32)
    text = CLIPTextModel.from_pretrained(Path(args.model) / "text_encoder", torch_dtype=torch.float32)
    unet.requires_grad_(False).eval()
    text.requires_grad_(False).eval()
    scale = json.loads((Path(args.model) / "vae" / "config.json").read_text())["scaling_factor"]  # SD's latent scale
    torch.manual_seed(args.seed)
    if args.method == "controlnet":
        if args.init:
            trained = ControlNetModel.from_pretrained(args.init, torch_dtype=torch.float32)
        else:
            trained = ControlNetModel.from_unet(unet)  # the encoder copied, zero convolutions at zero
        steer = partial(Controlled, unet, trained)  # maps (B, 3, H, W) -> the UNet steered by them
        groups = [{"params": list(trained.parameters())}]
    else:
        if args.init:
            trained = UNet2DConditionModel.from_pretrained(args.init, torch_dtype=torch.float32)
        else:
            trained = widen_conv_in(unet, 1)  # a fifth input channel, its weights at zero
        h, w = data["z"].shape[-2:]
        steer = lambda cond: Concatenated(trained, rescaled_depth(cond[:, :1], (h, w)))  # noqa: E731
        # the first convolution, whose new channel starts at zero, may learn faster (--conv-in-lr-scale)
        groups = [{"params": list(trained.conv_in.parameters()), "lr_scale": args.conv_in_lr_scale},
                  {"params": [p for n, p in trained.named_parameters() if not n.startswith("conv_in.")]}]
    trained.requires_grad_(True).train()
    opt = torch.optim.AdamW(groups, lr=args.lr)
    name = "controlnet" if args.method == "controlnet" else "unet"
    ema = EMA({name: trained}, args.ema) if args.ema else None
    start = _resume(args.out, {name: trained, **(ema.models if ema else {})}, opt)
    scheduler = DDIMScheduler.from_pretrained(Path(args.model) / "scheduler")
    empty = token_ids(clip_tokenizer(), [""])[0]
    loss_fn = partial(control_step_loss, steer, text, scheduler, data["z"] * scale, data["ids"],
                      data["maps"], empty, args.batch, args.drop, args.seed)

    _loop(args, LocalAccelerator(), start, {name: trained}, opt, loss_fn, ema)


def export(run, folder, dtype=torch.float16):
    """The run's newest ControlNet or widened UNet (the EMA copy when kept) as a diffusers folder
    (safetensors)."""
    from diffusers import ControlNetModel, UNet2DConditionModel
    from diffusers.utils import logging

    logging.set_verbosity_error()  # "modules that should be kept in float32": there are none
    ck = sorted(Path(run).glob("step*"))[-1]
    name = next(n for n in ("ema_controlnet", "controlnet", "ema_unet", "unet") if (ck / f"{n}.safetensors").exists())
    unet = UNet2DConditionModel(**model.UNET_CONFIG)
    if name.endswith("controlnet"):
        trained = ControlNetModel.from_unet(unet, load_weights_from_unet=False)
    else:
        trained = widen_conv_in(unet, 1)
    trained.load_state_dict(load_file(ck / f"{name}.safetensors"))
    trained.to(dtype).save_pretrained(folder, safe_serialization=True)
    return Path(folder)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/controlnet", help="run folder (checkpoints, loss.csv, data cache)")
    ap.add_argument("--model", default=str(model.SHIPPED), help="the built-in model's folder")
    ap.add_argument("--method", choices=("controlnet", "concat"), default="controlnet",
                    help="a ControlNet beside the frozen UNet, or the UNet fine-tuned with the map as a fifth channel")
    ap.add_argument("--kind", choices=control_maps.KINDS, default="mask")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every", type=int, default=200, help="checkpoint every N steps")
    ap.add_argument("--data", type=int, default=8000, help="number of training scenes")
    ap.add_argument("--drop", type=float, default=0.5, help="fraction of captions emptied (the paper: half)")
    ap.add_argument("--ema", type=float, default=0.0, help="EMA decay (0: none)")
    ap.add_argument("--until", type=int, default=0, help="stop (with a checkpoint) at this step")
    ap.add_argument("--minutes", type=float, default=0, help="fit --steps to this wall-clock budget")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--conv-in-lr-scale", type=float, default=1.0,
                    help="--method concat: the first convolution's learning rate, times --lr (its new channel starts at zero)")
    ap.add_argument("--init", default=None, help="start from this exported folder (a ControlNet, or a widened UNet)")
    ap.add_argument("--export", default=None, help="write the newest checkpoint as a diffusers folder here")
    args = ap.parse_args(argv)
    args.started, args.stage = time.monotonic(), f"{args.method}-{args.kind}"
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.export:
        print(export(args.out, args.export))
        return
    train(args)


if __name__ == "__main__":
    main()
