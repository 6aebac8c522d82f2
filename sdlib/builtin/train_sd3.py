"""Training the built-in SD3 in miniature (`sdlib.builtin.sd3`) from scratch on a CPU, with flow matching.

The transformer and both CLIP text encoders learn together, on the built-in model's frozen VAE
latents of the procedural scenes (the UNet stage's scenes: same seeds, 3 wordings each):

    x_t = (1 - sigma) x0 + sigma noise,   target v = noise - x0,   timestep t = sigma * 1000,
    sigma = sigmoid(u), u ~ N(0, 1)  (SD3's logit-normal, Esser et al. 2024, sec. 3.1)

with x0 the latents times the VAE's scaling_factor (its shift_factor is 0), about --drop of the
captions emptied (for classifier-free guidance), and the text read exactly as
StableDiffusion3Pipeline reads it (`sdlib.models.sd3.joint_text`): the 77 CLIP tokens followed by
--max-sequence-length zero tokens (the pipeline's default 256, what it feeds with no T5). Those
zero tokens are computed once, as one token standing for all of them
(`sd3.RepeatedTokenAttnProcessor`, exact), which makes a step about 3x cheaper.

    python -m sdlib.builtin.train_sd3 --out ~/sdlib-runs/sd3 --steps 20000 --threads 1
    python -m sdlib.builtin.train_sd3 --out ~/sdlib-runs/sd3 --export ~/sdlib-runs/sd3-model

Checkpoints every --every steps in --out (resumed from the newest; step k's randomness is fixed by
--seed, so a resumed run equals a straight one); --init restarts from an exported folder when the
run's checkpoints are gone. The export loads with
`StableDiffusion3Pipeline.from_pretrained(folder, text_encoder_3=None, tokenizer_3=None,
torch_dtype=torch.float32)`.
"""
import argparse
import json
import time
from functools import partial
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .. import processes
from ..errors import SDLibError
from ..models.flow import FLOW_SCHEDULER_CONFIG
from ..models.sd3 import joint_text
from ..training import objective
from . import sd3
from .train import EMA, LocalAccelerator, _loop, _resume, _weights, clip_tokenizer, encode_dataset, step_seed, token_ids


def sd3_step_loss(transformer, text_encoders, scheduler, x0_all, ids, empty, batch, drop, seed, zero_tokens,
                  step, teacher=None, teacher_weight=0.0):
    """The loss at `step`: a batch of scaled latents from x0_all (N, 4, h, w), one caption wording
    each from ids (N, K, 77), about `drop` of them emptied (`empty`), and the library's objective
    (`sdlib.training.objective.loss`, the flow target) at sigma and noise drawn from the step's own
    generator, in the order `train.unet_step_loss` draws them. The text goes through
    `sdlib.models.sd3.joint_text` with `zero_tokens` zero tokens (1 with the compact processor, see
    `sd3.compact_zero_tokens`).

    With a `teacher` (`flow_teacher`: the built-in flow UNet's velocity for the same x_t, t and
    caption), the target is (1 - teacher_weight) (noise - x0) + teacher_weight v_teacher:
    distillation, whose gradient is that of the two squared errors weighted so. The data's target
    is one noisy draw around E[noise - x0 | x_t, caption]; a trained model's velocity estimates
    that mean, so the student regresses onto a target without the draw's noise."""
    g = torch.Generator().manual_seed(step_seed(seed, step))
    idx = torch.randint(0, len(x0_all), (batch,), generator=g)
    x0 = x0_all[idx]  # (B, 4, h, w)
    tok = ids[idx, torch.randint(0, ids.shape[1], (batch,), generator=g)]  # (B, 77): one wording
    tok[torch.rand(batch, generator=g) < drop] = empty  # ~10% unconditional
    noise = torch.randn(x0.shape, generator=g)
    t = processes.draw_timesteps(scheduler, batch, g)  # (B,): sigma * 1000, sigma logit-normal
    text = joint_text(text_encoders, tok, max_sequence_length=zero_tokens,
                      joint_attention_dim=transformer.config.joint_attention_dim)

    def denoiser(x_t, t, encoder_hidden_states):  # the transformer, called as objective.loss calls a UNet
        return transformer(hidden_states=x_t, timestep=t, encoder_hidden_states=encoder_hidden_states,
                           pooled_projections=text.pooled)

    if teacher is None or teacher_weight == 0:
        return objective.loss(denoiser, scheduler, x0, text.tokens, t, noise)
    x_t = processes.add_noise(scheduler, x0, noise, t)  # (B, 4, h, w)
    target = processes.training_target(scheduler, x0, noise, t)  # (B, 4, h, w): noise - x0
    with torch.no_grad():
        target = (1 - teacher_weight) * target + teacher_weight * teacher(x_t, t, tok)
    output = denoiser(x_t, t, encoder_hidden_states=text.tokens).sample
    return torch.nn.functional.mse_loss(output.float(), target.float())


def flow_teacher(model="builtin-flow"):
    """The built-in flow UNet as a teacher: (x_t, t, token ids (B, 77)) -> its velocity (B, 4, h, w),
    read with its own text encoder, no guidance (the conditional or, for emptied captions, the
    unconditional velocity). The same VAE latents, scaling and flow process as the SD3 run."""
    from ..models.load import load_sd

    sd = load_sd(model, device="cpu")
    sd.unet.requires_grad_(False).eval()
    sd.text_encoder.requires_grad_(False).eval()

    def velocity(x_t, t, tok):
        emb = sd.text_encoder(tok)[0]  # (B, 77, D): as the flow UNet was trained
        return sd.unet(x_t, t, encoder_hidden_states=emb).sample

    return velocity


def _model_folder(args):
    return Path(args.model) if args.model else sd3.builtin_vae_folder()


def setup(args):
    """The training state of a run: (parts, opt, ema, start step, loss_fn). Caches the latents
    first (in --out)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    source = _model_folder(args)
    cache = out / "latents.safetensors"
    if not cache.exists():  # the UNet stage's first `--data` scenes (same seeds), 3 wordings each
        z, ids = encode_dataset(sd3.sd3_vae(source), args.data, args.seed)
        save_file({"z": z.contiguous(), "ids": ids.contiguous()}, cache)
    data = load_file(cache)
    if args.threads:  # the data cache above uses every core, training only these
        torch.set_num_threads(args.threads)
    scale = json.loads((source / "vae" / "config.json").read_text())["scaling_factor"]
    (out / "sd3.json").write_text(json.dumps({"scaling_factor": scale, "model": str(source),
                                              "max_sequence_length": args.max_sequence_length}))
    parts = sd3.new_parts(args.seed)
    if args.init:  # restart from exported weights (a fresh run folder on a new machine)
        for name, m in parts.items():
            state = _weights(args.init, name)
            if name == "transformer":  # from another patch size (run 2's 2 x 2): `sd3.repatch`
                state = sd3.repatch(state, m.config.patch_size)
            missing, unexpected = m.load_state_dict(state, strict=False)
            if unexpected or set(missing) - {"pos_embed.pos_embed"}:
                raise SDLibError(f"--init must be an export of this model; {args.init}'s {name} does not fit "
                                 f"(missing {missing}, unexpected {unexpected}).")
    for m in parts.values():
        m.requires_grad_(True).train()
    opt = torch.optim.AdamW([p for m in parts.values() for p in m.parameters()], lr=args.lr,
                            weight_decay=args.weight_decay)
    ema = EMA(parts, args.ema) if args.ema else None
    start = _resume(out, {**parts, **(ema.models if ema else {})}, opt)
    zero_tokens = sd3.compact_zero_tokens(parts["transformer"], args.max_sequence_length)
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(FLOW_SCHEDULER_CONFIG)
    empty = token_ids(clip_tokenizer(), [""])[0]  # (77,): for CFG dropout
    teacher = flow_teacher(args.teacher) if args.teacher else None
    loss_fn = partial(sd3_step_loss, parts["transformer"], [parts["text_encoder"], parts["text_encoder_2"]],
                      scheduler, data["z"] * scale, data["ids"], empty, args.batch, args.drop, args.seed,
                      zero_tokens, teacher=teacher, teacher_weight=args.teacher_weight)
    return parts, opt, ema, start, loss_fn


def train(args):
    parts, opt, ema, start, loss_fn = setup(args)
    _loop(args, LocalAccelerator(), start, parts, opt, loss_fn, ema)
    return parts


def export(run, folder, model_folder=None, dtype=torch.float16):
    """The run's newest checkpoint (the EMA copies when kept) as a complete StableDiffusion3Pipeline
    folder, with the VAE of the model folder the run's latents came from."""
    run = Path(run)
    info = json.loads((run / "sd3.json").read_text()) if (run / "sd3.json").exists() else {}
    parts = sd3.new_parts()
    for name, m in parts.items():
        m.load_state_dict(_weights(run, name))
    ck = sorted(run.glob("step*"))[-1]
    note = f"Trained with `python -m sdlib.builtin.train_sd3`: {ck.name} of the run {run.name}.\n"
    source = model_folder or info.get("model")
    return sd3.save_sd3(folder, parts, sd3.sd3_vae(source), dtype=dtype, note=note,
                        max_sequence_length=info.get("max_sequence_length", sd3.MAX_SEQUENCE_LENGTH))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/sd3", help="run folder (checkpoints, loss.csv, latent cache)")
    ap.add_argument("--model", default=None, help="the built-in (SD v1-style) model folder whose VAE encodes"
                    " the scenes and is exported (default: the shipped one)")
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every", type=int, default=250, help="checkpoint every N steps")
    ap.add_argument("--data", type=int, default=20000, help="number of training scenes (3 wordings each;"
                    " encoding them is ~0.1 s each on one CPU thread, once)")
    ap.add_argument("--drop", type=float, default=0.1, help="fraction of captions emptied (for CFG)")
    ap.add_argument("--ema", type=float, default=0.999, help="EMA decay (0: none)")
    ap.add_argument("--max-sequence-length", type=int, default=sd3.MAX_SEQUENCE_LENGTH,
                    help="zero T5 tokens after the CLIP ones: the pipeline's max_sequence_length to use")
    ap.add_argument("--until", type=int, default=0, help="stop (with a checkpoint) at this step")
    ap.add_argument("--minutes", type=float, default=0, help="fit --steps to this wall-clock budget")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for training (0: torch's default;"
                    " the latent cache is made with every thread)")
    ap.add_argument("--teacher", default=None, help="distil from this flow UNet model (e.g. builtin-flow)")
    ap.add_argument("--teacher-weight", type=float, default=0.5, help="share of the teacher's velocity in"
                    " the target (with --teacher)")
    ap.add_argument("--init", default=None, help="start from this exported SD3 folder's weights")
    ap.add_argument("--export", default=None, help="write the newest checkpoint as an SD3 folder here")
    args = ap.parse_args(argv)
    args.started, args.stage = time.monotonic(), "sd3"
    if args.export:
        print(export(args.out, args.export, args.model))
        return
    train(args)


if __name__ == "__main__":
    main()
