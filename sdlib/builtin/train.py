"""Training the built-in model: VAE first, then UNet + text encoder on the VAE's latents.

    python -m sdlib.builtin.train vae  --out runs/vae  --steps 4000
    python -m sdlib.builtin.train unet --out runs/unet --vae runs/vae --steps 8000
    python -m sdlib.builtin.train decoder --out runs/decoder --vae runs/vae --steps 600   # optional
    python -m sdlib.builtin.train export --vae runs/decoder --unet runs/unet --to sdlib/models/builtin

Every stage is deterministic given --seed, resumes from the newest checkpoint in --out, shows a
progress bar and appends to --out/loss.csv. `accelerate` places the work, so the same command runs
on a CPU, one GPU or several (launch with `accelerate launch -m sdlib.builtin.train ...`).
Images come from `sdlib.builtin.scenes` (procedural, seeded: nothing is downloaded).
"""
import argparse
import json
import math
import shutil
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ..images import to_tensor, to_vae_range
from .. import processes
from ..training import objective
from . import model, photos, scenes
from ..models.clip_tokenizer import save_clip_tokenizer


def _checkpoint(out, step, models, opt, extra=None):
    """Weights as safetensors, optimizer state separately; the newest one wins on resume."""
    ck = Path(out) / f"step{step:07d}"
    ck.mkdir(parents=True, exist_ok=True)
    for name, m in models.items():
        save_file({k: v.detach().cpu().contiguous() for k, v in m.state_dict().items()}, ck / f"{name}.safetensors")
    torch.save(opt.state_dict(), ck / "optimizer.pt")
    (ck / "state.json").write_text(json.dumps({"step": step, **(extra or {})}))
    for old in sorted(Path(out).glob("step*"))[:-2]:  # keep the last two
        shutil.rmtree(old)


def _resume(out, models, opt):
    cks = sorted(Path(out).glob("step*"))
    if not cks:
        return 0
    ck = cks[-1]
    for name, m in models.items():
        m.load_state_dict(load_file(ck / f"{name}.safetensors"))
    opt.load_state_dict(torch.load(ck / "optimizer.pt", weights_only=True))
    return json.loads((ck / "state.json").read_text())["step"]


# Per-step seeds: step s of a run with --seed k draws from seed k * SEED_STRIDE + s, so every step's
# randomness is fixed (a resumed run equals a straight one) and runs with different --seed never
# share a stream (a prime stride, larger than any run's step count). The decoder stage and the
# latent cache draw from their own offsets, so they never reuse the VAE stage's scenes.
SEED_STRIDE = 1_000_003
DECODER_OFFSET = 7_777_777


def step_seed(seed, step, offset=0):
    """The seed of one training step (see SEED_STRIDE)."""
    return seed * SEED_STRIDE + offset + step


def lr_at(step, steps, peak, warmup=200):
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def _recon_loss(recon, x):
    """MSE for the colours, plus a little L1 for sharper edges."""
    return F.mse_loss(recon, x) + 0.1 * F.l1_loss(recon, x)


# What the VAE learns from: the scenes the UNet will draw, crops of real photos (so a photo survives
# the round trip, notebooks 01 and 02) and procedural textures (colours and grain no photo has).
VAE_SOURCES = {"scenes": 0.5, "photos": 0.35, "textures": 0.15}


def _vae_pictures(n, seed, size):
    """n training pictures for the VAE, uint8 (n, size, size, 3), mixed as VAE_SOURCES says."""
    counts = np.random.default_rng(seed).multinomial(n, list(VAE_SOURCES.values()))
    parts = [scenes.make_batch(counts[0], seed, size=size)[0],
             photos.photo_crops(counts[1], seed, size), photos.noise_textures(counts[2], seed, size)]
    return np.concatenate(parts)


def _images(n, seed, crop=None):
    """A batch of VAE training pictures in [-1, 1], (n, 3, S, S) at the model's size S, optionally
    one random 8-aligned crop of side `crop` for the whole batch."""
    x = to_vae_range(to_tensor(_vae_pictures(n, seed, model.IMAGE_SIZE)))  # (n, 3, S, S)
    if crop:
        rng = np.random.default_rng(seed)
        cells = (x.shape[-1] - crop) // 8 + 1
        i, j = (int(v) * 8 for v in rng.integers(0, cells, 2))
        x = x[..., i:i + crop, j:j + crop]
    return x


def train_vae(args, accelerator):
    from diffusers import AutoencoderKL

    torch.manual_seed(args.seed)
    vae = AutoencoderKL(**model.VAE_CONFIG)
    opt = torch.optim.Adam(vae.parameters(), lr=args.lr)
    start = _resume(args.out, {"vae": vae}, opt)
    vae, opt = accelerator.prepare(vae, opt)
    return _loop(args, accelerator, start, {"vae": vae}, opt, lambda step: _vae_loss(vae, args, step))


def train_decoder(args, accelerator):
    """Sharpen the decoder with the encoder frozen: the latents (and a UNet trained on them) stay
    valid, only the pictures made from them get better. Trained on the encoder's means."""
    vae = load_vae(args.vae)
    decoder = [vae.decoder, vae.post_quant_conv]
    params = [p for m in decoder for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=args.lr)
    start = _resume(args.out, {"vae": vae}, opt)
    images = _Ahead(partial(_decoder_images, args.batch, args.seed), start, args.workers)  # before CUDA
    vae, opt = accelerator.prepare(vae, opt)

    def loss_fn(step):
        x = images(step).to(vae.device)
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mean
        return _recon_loss(vae.decode(z).sample, x)

    return _loop(args, accelerator, start, {"vae": vae}, opt, loss_fn)


def _decoder_images(batch, seed, step):
    return _images(batch, step_seed(seed, step, DECODER_OFFSET))


class _Ahead:
    """fn(step) for steps start, start + 1, ... made ahead in `workers` other processes (at most
    2 * workers waiting), so drawing pictures keeps up with a GPU. The batches are seeded by step:
    the same as making them in this process. workers=0: made here, when asked."""

    def __init__(self, fn, start, workers):
        import collections
        import multiprocessing as mp

        self.fn, self.next, self.workers = fn, start, workers
        self.queue = collections.deque()
        if workers:
            self.pool = mp.get_context("fork").Pool(workers, initializer=torch.set_num_threads, initargs=(1,))

    def __call__(self, step):
        if not self.workers:
            return self.fn(step)
        if self.queue and self.queue[0][0] != step:  # not the step expected: start again from it
            self.queue.clear()
            self.next = step
        while len(self.queue) < 2 * self.workers:
            self.queue.append((self.next, self.pool.apply_async(self.fn, (self.next,))))
            self.next += 1
        return self.queue.popleft()[1].get()


def _vae_loss(vae, args, step):
    crop = args.crop if step < args.steps * 0.8 else None  # cheap crops first, whole images last
    x = _images(args.batch, step_seed(args.seed, step), crop).to(vae.device)
    post = vae.encode(x).latent_dist
    recon = vae.decode(post.sample()).sample
    kl = post.kl().mean() / x[0].numel()
    return _recon_loss(recon, x) + args.kl * kl


class EMA:
    """An exponential moving average of the weights, the model that is sampled from (DDPM,
    Ho et al. 2020, sec. 4, and SD's training keep one): theta_ema <- d * theta_ema + (1 - d) * theta
    after every step, so it averages the last ~1 / (1 - d) steps and smooths out the noise of
    small batches. d warms up as (1 + step) / (10 + step), so the early average is not stuck at
    the random initialisation."""

    def __init__(self, models, decay):
        import copy

        self.decay, self.sources = decay, models
        self.models = {f"ema_{k}": copy.deepcopy(m).requires_grad_(False) for k, m in models.items()}

    @torch.no_grad()
    def update(self, step):
        d = min(self.decay, (1 + step) / (10 + step))
        for name, m in self.sources.items():
            for e, p in zip(self.models[f"ema_{name}"].parameters(), m.parameters()):
                e.lerp_(p.detach(), 1 - d)


class LocalAccelerator:
    """`_loop`'s accelerator for one CPU process (the fine-tunes: train_control, train_flow, train_sd3)."""
    is_main_process = True
    backward = staticmethod(lambda loss: loss.backward())
    clip_grad_norm_ = staticmethod(torch.nn.utils.clip_grad_norm_)
    unwrap_model = staticmethod(lambda m: m)


def _loop(args, accelerator, start, models, opt, loss_fn, ema=None):
    from tqdm.auto import tqdm

    log = open(Path(args.out) / "loss.csv", "a")
    bar = tqdm(range(start, args.steps), initial=start, total=args.steps, desc=args.stage,
               disable=not accelerator.is_main_process, mininterval=5)
    avg, clock = None, None
    for step in bar:
        if step == start + 50:  # warmed up: time the next 100 steps
            clock = time.monotonic()
        if args.minutes and step == start + 150:  # then fit the run to the time left
            _fit_to_budget(args, step, 100 / (time.monotonic() - clock), bar)
        if (args.until and step >= args.until) or step >= args.steps:
            break
        torch.manual_seed(step_seed(args.seed, step))  # per-step randomness: resume is exact
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr) * group.get("lr_scale", 1.0)
        loss = loss_fn(step)
        opt.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_([p for m in models.values() for p in m.parameters()], 1.0)
        opt.step()
        if ema is not None:
            ema.update(step)
        avg = loss.item() if avg is None else 0.98 * avg + 0.02 * loss.item()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{avg:.4f}")
            log.write(f"{step},{loss.item():.6f},{avg:.6f}\n")
            log.flush()
        if (step + 1) % args.every == 0 or step + 1 in (args.steps, args.until):
            _checkpoint(args.out, step + 1, {**{k: accelerator.unwrap_model(m) for k, m in models.items()},
                                             **(ema.models if ema else {})}, opt)
    return models


def _fit_to_budget(args, step, rate, bar):
    """--minutes: from the speed of the first steps, choose --steps so the whole command (its data,
    the run's cosine decay) ends inside the budget; a GPU call of fixed length then returns finished
    weights. The chosen count is printed: rerun with --steps N to repeat the run exactly."""
    left = args.minutes * 60 - (time.monotonic() - args.started) - 30  # 30 s for the last checkpoint
    args.steps = max(step + 1, min(args.steps, args.until or args.steps, step + int(left * rate)))
    bar.total = args.steps
    print(f"--minutes {args.minutes}: {rate:.2f} steps/s, running to step {args.steps}", flush=True)


def _weights(folder, part):
    """A part's weights from a run folder (its newest checkpoint, the EMA copy when there is one)
    or from an exported model folder (`part/*.safetensors`), so a run can restart from the last
    exported weights when its checkpoints are gone."""
    folder = Path(folder)
    if (folder / part / "config.json").exists():  # an exported diffusers folder
        files = sorted((folder / part).glob("*.safetensors"))
        return {k: v.float() for k, v in load_file(files[0]).items()}
    ck = sorted(folder.glob("step*"))[-1]
    return load_file(ck / f"ema_{part}.safetensors" if (ck / f"ema_{part}.safetensors").exists()
                     else ck / f"{part}.safetensors")


def load_vae(folder):
    """The VAE of a run folder (newest checkpoint) or of an exported model folder, frozen."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(**model.VAE_CONFIG)
    vae.load_state_dict(_weights(folder, "vae"))
    return vae.eval().requires_grad_(False)


CAPTIONS_PER_SCENE = 3   # wordings per cached scene ("a big red circle on the left", "red circle ...")
CAPTION_OFFSET = 3_333_333  # the extra wordings' own seeds (see SEED_STRIDE)


@torch.no_grad()
def encode_dataset(vae, n, seed, batch=64, device="cpu", two_object_prob=scenes.TWO_OBJECT_PROB):
    """Latents (unscaled means, (n, 4, h, w), on the CPU) and token ids ((n, CAPTIONS_PER_SCENE, 77))
    of n training scenes, cached on disk by the caller. Each scene gets several captions: the latents
    are the expensive part, and a scene said in different words teaches the words, not the wording."""
    tok = clip_tokenizer()
    vae = vae.to(device)
    zs, ids = [], []
    for k in range(0, n, batch):
        imgs, caps, scs = scenes.make_batch(min(batch, n - k), step_seed(seed, k), size=model.IMAGE_SIZE,
                                            two_object_prob=two_object_prob)
        zs.append(vae.encode(to_vae_range(to_tensor(imgs)).to(device)).latent_dist.mean.cpu())
        rng = np.random.default_rng(step_seed(seed, k, CAPTION_OFFSET))
        wordings = [caps] + [[scenes.caption(sc, rng) for sc in scs] for _ in range(CAPTIONS_PER_SCENE - 1)]
        ids.append(torch.stack([token_ids(tok, w) for w in wordings], 1))  # (batch, K, 77)
    return torch.cat(zs), torch.cat(ids)


def clip_tokenizer():
    """SD v1's CLIP tokenizer (built offline once into the cache, see `tokenizer`)."""
    from transformers import CLIPTokenizer

    tok_dir = Path(model.cache_dir().parent / "tokenizer")
    if not (tok_dir / "vocab.json").exists():
        save_clip_tokenizer(tok_dir)
    return CLIPTokenizer.from_pretrained(tok_dir)


def token_ids(tok, captions):
    """Captions -> ids (B, 77), padded as the pipeline pads them."""
    return tok(captions, padding="max_length", max_length=tok.model_max_length, truncation=True,
               return_tensors="pt").input_ids


def train_unet(args, accelerator):
    from diffusers import DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    cache = Path(args.out) / "latents.safetensors"
    if not cache.exists():
        Path(args.out).mkdir(parents=True, exist_ok=True)
        z, ids = encode_dataset(load_vae(args.vae), args.data, args.seed, device=accelerator.device,
                                two_object_prob=args.two_objects)
        save_file({"z": z.contiguous(), "ids": ids.contiguous()}, cache)
    data = load_file(cache)
    z, ids = data["z"].to(accelerator.device), data["ids"]
    if args.init:  # a restart or fine-tune keeps the scale its weights were trained with
        scale = json.loads((Path(args.init) / "vae" / "config.json").read_text())["scaling_factor"]
    else:
        scale = float(1 / z.std())  # SD's scaling_factor: latents to unit variance
    empty = token_ids(clip_tokenizer(), [""])[0]  # (77,): BOS, EOS, padding; for CFG dropout
    torch.manual_seed(args.seed)
    unet = UNet2DConditionModel(**model.UNET_CONFIG)
    text = CLIPTextModel(CLIPTextConfig(**model.TEXT_CONFIG))
    if args.init:  # restart from exported weights (a fresh run folder on a new machine)
        unet.load_state_dict(_weights(args.init, "unet"))
        text.load_state_dict(_weights(args.init, "text_encoder"))
    opt = torch.optim.Adam(list(unet.parameters()) + list(text.parameters()), lr=args.lr)
    ema = EMA({"unet": unet, "text_encoder": text}, args.ema) if args.ema else None
    start = _resume(args.out, {"unet": unet, "text_encoder": text, **(ema.models if ema else {})}, opt)
    unet, text, opt = accelerator.prepare(unet, text, opt)
    for m in (ema.models.values() if ema else []):
        m.to(accelerator.device)  # the EMA copies live beside the weights they follow
    scheduler = DDIMScheduler.from_config(model.SCHEDULER_CONFIG)  # the model's own noise schedule

    loss_fn = partial(unet_step_loss, unet, text, scheduler, z * scale, ids, empty, args.batch, args.drop,
                      args.seed)
    (Path(args.out) / "scaling.json").write_text(json.dumps({"scaling_factor": scale}))
    return _loop(args, accelerator, start, {"unet": unet, "text_encoder": text}, opt, loss_fn, ema)


def unet_step_loss(unet, text, scheduler, x0_all, ids, empty, batch, drop, seed, step):
    """The UNet stage's loss at `step`: a batch of scaled latents x0_all (N, 4, h, w), one caption
    wording each from ids (N, K, 77), about `drop` of them made unconditional (`empty`, for CFG),
    and the library's objective (`sdlib.training.objective.loss`: DDPM's simple loss, eq. 14) on
    t and noise drawn from the step's own generator, so a resumed run draws what a straight one would."""
    g = torch.Generator().manual_seed(step_seed(seed, step))
    idx = torch.randint(0, len(x0_all), (batch,), generator=g)
    x0 = x0_all[idx.to(x0_all.device)]  # (B, 4, h, w)
    tok = ids[idx, torch.randint(0, ids.shape[1], (batch,), generator=g)]  # (B, 77): one wording
    tok[torch.rand(batch, generator=g) < drop] = empty  # ~10% unconditional
    noise = torch.randn(x0.shape, generator=g).to(x0)
    t = processes.draw_timesteps(scheduler, batch, g).to(x0.device)  # (B,): as the model's process draws them
    emb = text(tok.to(x0.device))[0]  # (B, 77, D)
    return objective.loss(unet, scheduler, x0, emb, t, noise)


def export(vae_run, unet_run, folder, dtype=torch.float16):
    """Write the trained parts as a diffusers SD folder (safetensors), ready for from_pretrained.
    The UNet and VAE are stored in float16 (half the size; `load_sd` gives float32 on a CPU), the
    text encoder in float32 (see below); the UNet and text encoder from the EMA copy when the run
    kept one."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.utils import logging
    from transformers import CLIPTextConfig, CLIPTextModel

    logging.set_verbosity_error()  # "modules that should be kept in float32": there are none
    folder = Path(folder)
    model.write_skeleton(folder)  # tokenizer, scheduler, model_index.json
    scaling = Path(unet_run) / "scaling.json"  # a run folder; else an exported folder's VAE config
    scale = json.loads((scaling if scaling.exists() else Path(unet_run) / "vae" / "config.json")
                       .read_text())["scaling_factor"]
    parts = {"vae": (AutoencoderKL(**dict(model.VAE_CONFIG, scaling_factor=round(scale, 5))), vae_run),
             "unet": (UNet2DConditionModel(**model.UNET_CONFIG), unet_run),
             "text_encoder": (CLIPTextModel(CLIPTextConfig(**model.TEXT_CONFIG)), unet_run)}
    for part, (module, run) in parts.items():
        module.load_state_dict(_weights(run, part))
        # transformers loads a model in the dtype it was saved in (diffusers in float32), so the
        # text encoder stays float32 for StableDiffusionPipeline.from_pretrained to run on a CPU
        module.to(torch.float32 if part == "text_encoder" else dtype).save_pretrained(
            folder / part, safe_serialization=True)
    return folder


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=["vae", "decoder", "unet", "export"])
    ap.add_argument("--out", default=None, help="run folder (checkpoints, loss.csv)")
    ap.add_argument("--vae", default="runs/vae", help="VAE run folder (unet, export)")
    ap.add_argument("--unet", default="runs/unet", help="UNet run folder (export)")
    ap.add_argument("--to", default=None, help="export: the model folder to write")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every", type=int, default=250, help="checkpoint every N steps")
    ap.add_argument("--crop", type=int, default=32, help="vae: crop size for the first 80%% of steps")
    ap.add_argument("--kl", type=float, default=1e-5, help="vae: KL weight (per pixel value)")
    ap.add_argument("--data", type=int, default=40000, help="unet: number of training scenes")
    ap.add_argument("--drop", type=float, default=0.1, help="unet: fraction of captions dropped")
    ap.add_argument("--until", type=int, default=0, help="stop (with a checkpoint) at this step")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--ema", type=float, default=0.999, help="unet: EMA decay (0: no EMA copy)")
    ap.add_argument("--two-objects", type=float, default=scenes.TWO_OBJECT_PROB,
                    help="unet: share of two-object scenes in the training data (a fine-tune can raise it)")
    ap.add_argument("--workers", type=int, default=0, help="decoder: processes drawing pictures ahead")
    ap.add_argument("--minutes", type=float, default=0, help="fit --steps to this wall-clock"
                    " budget (speed timed over steps 50-150)")
    ap.add_argument("--init", default=None, help="unet: start from this exported model folder's"
                    " weights (when the run's checkpoints are lost)")
    args = ap.parse_args(argv)
    args.started = time.monotonic()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.stage == "export":
        print(export(args.vae, args.unet, args.to or model.SHIPPED))
        return
    from accelerate import Accelerator

    args.out = args.out or f"runs/{args.stage}"
    Path(args.out).mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # GPU: TF32
    {"vae": train_vae, "decoder": train_decoder, "unet": train_unet}[args.stage](args, accelerator)


if __name__ == "__main__":
    main()
