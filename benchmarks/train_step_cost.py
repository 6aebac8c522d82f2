"""What one training step of the built-in model costs on this machine, for the widths considered.

    .venv/bin/python benchmarks/train_step_cost.py --threads 2          # UNet and VAE candidates
    .venv/bin/python benchmarks/train_step_cost.py --threads 1 --only unet

Forward + backward + Adam on random data of the training shapes (batch 32 latents of 16 x 16 for
the UNet with the text encoder; batch 16 pictures of 64 px crops and 128 px for the VAE), median
of a few steps after a warm-up. Measure before you scale: the built-in model must train to its
goals in about 6 CPU-hours (see the model card's recipe).
"""
import argparse
import time

import torch

from sdlib.builtin import model

UNETS = {  # name -> overrides of model.UNET_CONFIG
    "2 levels (64, 128)": dict(block_out_channels=(64, 128),
                               down_block_types=("CrossAttnDownBlock2D",) * 2,
                               up_block_types=("CrossAttnUpBlock2D",) * 2),
    "3 levels (64, 128, 128)": dict(block_out_channels=(64, 128, 128),
                                    down_block_types=("CrossAttnDownBlock2D",) * 3,
                                    up_block_types=("CrossAttnUpBlock2D",) * 3),
    "3 levels (64, 128, 192)": dict(block_out_channels=(64, 128, 192),
                                    down_block_types=("CrossAttnDownBlock2D",) * 3,
                                    up_block_types=("CrossAttnUpBlock2D",) * 3),
}
VAES = {  # name -> block_out_channels
    "(32, 32, 64, 64)": (32, 32, 64, 64),
    "(32, 64, 64, 64)": (32, 64, 64, 64),
    "(32, 64, 128, 128)": (32, 64, 128, 128),
}


def seconds_per_step(parts, loss_fn, steps=4):
    params = [p for m in parts for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-4)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[len(times[1:]) // 2], sum(p.numel() for p in params) / 1e6


def unet_cost(overrides, batch=32):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNet2DConditionModel(**dict(model.UNET_CONFIG, **overrides))
    text = CLIPTextModel(CLIPTextConfig(**model.TEXT_CONFIG))
    side = model.IMAGE_SIZE // 8
    x = torch.randn(batch, 4, side, side)  # (B, 4, h, w)
    ids = torch.randint(0, 49408, (batch, 77))
    t = torch.randint(0, 1000, (batch,))
    return seconds_per_step([unet, text], lambda: unet(
        x, t, encoder_hidden_states=text(ids)[0]).sample.pow(2).mean())


def vae_cost(channels, size, batch=16):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(**dict(model.VAE_CONFIG, block_out_channels=channels))
    x = torch.rand(batch, 3, size, size) * 2 - 1  # (B, 3, S, S)
    return seconds_per_step([vae], lambda: (vae(x).sample - x).pow(2).mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=["unet", "vae"], default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} thread(s), image size {model.IMAGE_SIZE}")
    if args.only != "vae":
        for name, overrides in UNETS.items():
            s, p = unet_cost(overrides)
            print(f"UNet {name:26s} + text encoder {p:5.1f} M params  {1 / s:5.2f} steps/s (batch 32)")
    if args.only != "unet":
        for name, channels in VAES.items():
            for size in (64, 128):
                s, p = vae_cost(channels, size)
                print(f"VAE {name:20s} {p:5.2f} M params  {size:3d} px  {1 / s:5.2f} steps/s (batch 16)")


if __name__ == "__main__":
    main()
