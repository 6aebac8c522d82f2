"""Step caching: reuse the UNet's deep features between neighbouring denoising steps.

DeepCache (Ma, Fang and Wang, CVPR 2024, "DeepCache: Accelerating Diffusion Models for Free",
sec. 3.2-3.3): in a UNet the deep path (every down block past the shallowest, the middle block,
and the up blocks before the last) changes little from one step to the next, while the shallow
skip branch carries the detail. So every `interval` steps the whole UNet runs and the input of
its last `branch` up blocks is kept, the cached deep features F_cache (their eq. 6); on the
steps between, only the shallow path runs (their eq. 7):

    h = conv_in(x_t);  the first `branch` down blocks   -> the skip features of the shallow levels
    h = the last `branch` up blocks(F_cache, skip features);  eps = conv_out(h)

This is their uniform 1:N strategy with N = interval. interval=1 recomputes everything at every
step: the UNet itself, exactly. Nothing of diffusers is forked: full steps are the UNet's own
forward (a forward pre-hook keeps F_cache), the shallow path calls the UNet's own blocks.
Symbols: x_t latents (B, 4, h, w); t the timestep; c = text_emb (B, 77, D); b = branch.

    with step_cache(sd, interval=3) as fast:     # `fast` is sd with a caching UNet
        images = sdlib.generate(fast, prompts)   # one full UNet pass in three steps

Taught in notebooks/08.
"""
import contextlib
import dataclasses

import torch

from ..checks import check_int
from ..errors import SDLibError
from ..models.load import check_sd


class CachedUNet(torch.nn.Module):
    """A UNet2DConditionModel that runs in full every `interval` calls and only its shallow path
    (the first and last `branch` blocks) in between, with the deep features of the last full call.

    A new sampling run is recognised by its timestep: within a run t only falls, so a call whose
    t is not below the last one (or whose batch shape differs) starts again with a full step.
    (PNDM visits its second timestep twice: there the cache starts again, one full call more.)
    `full_steps` and `shallow_steps` count the calls of each kind since the wrapper was made.
    Taught in notebooks/08, section 3.
    """

    def __init__(self, unet, interval=2, branch=1):
        super().__init__()
        if not hasattr(unet, "up_blocks") or not hasattr(unet, "down_blocks"):
            raise SDLibError(f"unet must be a diffusers UNet2DConditionModel (sd.unet), got "
                             f"{type(unet).__name__}.")
        cfg = unet.config
        if (cfg.class_embed_type or cfg.addition_embed_type or cfg.encoder_hid_dim_type
                or cfg.center_input_sample):
            raise SDLibError("step caching takes the UNet of SD v1/v2 text-to-image (no class, "
                             "addition or image embeddings); this UNet has some.")
        self.unet = unet
        self.interval = check_int("interval", interval, lo=1)
        self.branch = check_int("branch", branch, lo=1, hi=len(unet.up_blocks) - 1)
        self.full_steps = self.shallow_steps = 0
        self.reset()

    # the attributes the sampler and diffusers' pipeline read from a UNet
    @property
    def config(self):
        return self.unet.config

    @property
    def dtype(self):
        return self.unet.dtype

    @property
    def device(self):
        return self.unet.device

    def reset(self):
        """Forget the cached features: the next call is a full step."""
        self.cache, self.calls, self.last_t, self.shape = None, 0, None, None

    def forward(self, sample, timestep, encoder_hidden_states, return_dict=True, **unused):
        extra = [k for k, v in unused.items() if v is not None]
        if extra:
            raise SDLibError(f"the step-cached UNet takes sample, timestep and encoder_hidden_states "
                             f"only (what SD's sampler passes); got {', '.join(extra)} as well.")
        t = float(torch.as_tensor(timestep).flatten()[0])
        if self.last_t is None or t >= self.last_t or sample.shape != self.shape:
            self.reset()  # a new sampling run
        self.last_t, self.shape = t, sample.shape
        if self.calls % self.interval == 0:
            out = self._full(sample, timestep, encoder_hidden_states)
            self.full_steps += 1
        else:
            out = self._shallow(sample, timestep, encoder_hidden_states)
            self.shallow_steps += 1
        self.calls += 1
        if not return_dict:
            return (out,)
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        return UNet2DConditionOutput(sample=out)

    def _full(self, sample, timestep, text_emb):
        """The UNet's own forward; a pre-hook keeps the input of up block -branch: F_cache."""
        def keep(module, args, kwargs):
            self.cache = kwargs["hidden_states"]  # (B, C_b, h_b, w_b)

        hook = self.unet.up_blocks[-self.branch].register_forward_pre_hook(keep, with_kwargs=True)
        try:
            return self.unet(sample, timestep, encoder_hidden_states=text_emb).sample
        finally:
            hook.remove()

    def _shallow(self, sample, timestep, text_emb):
        """The shallow path on F_cache (DeepCache eq. 7), with the UNet's own blocks and the same
        calls as its forward: time embedding, conv_in, the first b down blocks, the last b up
        blocks, the output convolution. (B, 4, h, w) in and out."""
        u, b = self.unet, self.branch
        emb = u.time_embedding(u.get_time_embed(sample=sample, timestep=timestep), None)  # (B, E)
        if u.time_embed_act is not None:
            emb = u.time_embed_act(emb)
        h = u.conv_in(sample)  # (B, C_0, h, w)
        skips = (h,)
        for block in u.down_blocks[:b]:
            h, res = (block(hidden_states=h, temb=emb, encoder_hidden_states=text_emb)
                      if getattr(block, "has_cross_attention", False)
                      else block(hidden_states=h, temb=emb))
            skips += res
        factor = 2 ** u.num_upsamplers  # as the UNet's forward: sizes only for odd latent sides
        forward_size = any(side % factor for side in sample.shape[-2:])
        up = u.up_blocks[-b:]
        skips = skips[:sum(len(block.resnets) for block in up)]  # the deepest one feeds a skipped block
        h = self.cache  # (B, C_b, h_b, w_b): the deep features of the last full step
        for block in up:
            res, skips = skips[-len(block.resnets):], skips[:-len(block.resnets)]
            kw = dict(hidden_states=h, temb=emb, res_hidden_states_tuple=res,
                      upsample_size=skips[-1].shape[2:] if forward_size and skips else None)
            h = block(**kw, encoder_hidden_states=text_emb) \
                if getattr(block, "has_cross_attention", False) else block(**kw)
        if u.conv_norm_out is not None:
            h = u.conv_act(u.conv_norm_out(h))
        return u.conv_out(h)  # (B, 4, h, w)


@contextlib.contextmanager
def step_cache(sd, interval=2, branch=1):
    """`with step_cache(sd, interval=N) as fast:` a copy of the bundle whose UNet is a
    `CachedUNet` (the same weights, nothing copied); `sd` itself is untouched. interval=1 is the
    plain UNet's output exactly. Taught in notebooks/08."""
    check_sd(sd)
    cached = CachedUNet(sd.unet, interval, branch)
    yield dataclasses.replace(sd, unet=cached)


def up_block_inputs(sd, prompt, num_steps=20, seed=0, **generate_kw):
    """The input of every up block at every step of one `sdlib.generate` run: a list, one
    (num_steps, 2B, C, h, w) tensor per up block (deepest first; 2B: the CFG batch). These are
    the features step caching reuses. Taught in notebooks/08, section 2."""
    from .sampler import generate

    check_sd(sd)
    kept = [[] for _ in sd.unet.up_blocks]

    def keep(i):
        def pre_hook(module, args, kwargs):
            kept[i].append(kwargs["hidden_states"].detach().float().cpu())  # (2B, C, h, w)
        return pre_hook

    hooks = [block.register_forward_pre_hook(keep(i), with_kwargs=True)
             for i, block in enumerate(sd.unet.up_blocks)]
    try:
        generate(sd, prompt, num_steps=num_steps, seed=seed, **generate_kw)
    finally:
        for h in hooks:
            h.remove()
    return [torch.stack(steps) for steps in kept]


def step_similarity(features):
    """Cosine similarity of each step's features with the previous step's, per sample, averaged:
    (num_steps, 2B, ...) -> (num_steps - 1,). 1 means the step changed nothing (DeepCache fig. 2).
    Taught in notebooks/08, section 2."""
    f = features.flatten(2)  # (S, 2B, C*h*w)
    return torch.nn.functional.cosine_similarity(f[1:], f[:-1], dim=-1).mean(-1)  # (S - 1,)


def shallow_share(flops, branch=1):
    """The share of a UNet call's operations on the shallow path (`flop_parts` counts): what a
    cached step still costs. DeepCache keeps conv_in, the first `branch` down blocks, the last
    `branch` up blocks and conv_out (and the time embedding).
    Taught in notebooks/08, sections 3 and 4."""
    ups = [k for k in flops if k.startswith("up_blocks.")]  # in the UNet's order (`unet_parts`)
    downs = [k for k in flops if k.startswith("down_blocks.")]
    kept = ["time_embedding", "conv_in", *downs[:branch], *ups[-branch:], "conv_out"]
    return sum(flops[k] for k in kept) / flops["total"]


def predicted_speedup(share, interval):
    """Amdahl's law for uniform caching: one full call (cost 1) and interval - 1 shallow ones
    (cost `share` each) per `interval` steps, against `interval` full calls:
    speed-up = interval / (1 + (interval - 1) * share). The UNet only: the VAE and text encoder
    cost the same either way. Taught in notebooks/08, sections 3 and 4."""
    return interval / (1 + (interval - 1) * share)
