"""Looking inside the UNet: its blocks, one prediction, and where each word's attention lands.

Why: the UNet is the only part of Stable Diffusion that runs at every step, yet from the outside it
is one call, eps = unet(x_t, t, text_emb). These helpers open it up without changing what it
computes: `blocks` reads the block structure (and shapes, from one traced call) off the model
itself, `predict_once` is the training objective's view (noise a clean latent, predict, recover
x0_pred), and `capture_cross_attention` records the cross-attention probabilities through a
diffusers attention processor that returns exactly what the default one returns.

    print(format_blocks(blocks(sd)))
    with capture_cross_attention(sd) as store:
        sdlib.generate(sd, "a red circle", seed=0)
    maps = store.maps(sd.image_size // sd.vae_scale)   # (77, h, w): one map per token position
"""
import numbers
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import SDLibError
from ..checks import check_int, check_prompts, shape_or_type
from .load import check_sd, n_params
from ..processes.vp import add_noise_vp, alpha_bars, noise_from_output, prediction_type, x0_from_output
from .text import check_width


# ---------------------------------------------------------------- structure
@dataclass
class Block:
    """One top-level piece of the UNet, as the model itself reports it.
    One row of blocks; taught in notebooks/04, section 2."""

    name: str  # e.g. "down_blocks.0", "mid_block", "up_blocks.1"
    kind: str  # the diffusers class name, e.g. "CrossAttnDownBlock2D"
    params: int
    cross_attention: int  # number of cross-attention layers (attn2) inside: where the text enters
    in_shape: tuple  # (C, h, w) of the latent features going in (from one traced call)
    out_shape: tuple  # (C, h, w) coming out


def _block_modules(unet):
    yield from ((f"down_blocks.{i}", b) for i, b in enumerate(unet.down_blocks))
    yield "mid_block", unet.mid_block
    yield from ((f"up_blocks.{i}", b) for i, b in enumerate(unet.up_blocks))


@torch.no_grad()
def blocks(sd, batch=1):
    """The UNet's down, mid and up blocks with parameter counts, cross-attention layer counts and
    feature shapes, read from one forward pass at the model's own sample size (hooks, no edits).
    Taught in notebooks/04, section 2."""
    check_sd(sd)
    batch = check_int("batch", batch, lo=1)
    unet = sd.unet
    shapes, hooks = {}, []
    for name, module in _block_modules(unet):
        def hook(mod, args, kwargs, out, name=name):
            x = args[0] if args else kwargs["hidden_states"]  # (B, C, h, w) going in
            out = out[0] if isinstance(out, tuple) else out
            shapes[name] = (tuple(x.shape[1:]), tuple(out.shape[1:]))
        hooks.append(module.register_forward_hook(hook, with_kwargs=True))
    try:
        size = unet.config.sample_size
        x_t = torch.zeros(batch, unet.config.in_channels, size, size, device=sd.device, dtype=sd.dtype)
        emb = torch.zeros(batch, sd.tokenizer.model_max_length, unet.config.cross_attention_dim,
                          device=sd.device, dtype=sd.dtype)
        t = sd.scheduler.config.num_train_timesteps // 2  # any timestep: shapes do not depend on it
        unet(x_t, t, encoder_hidden_states=emb)
    finally:
        for h in hooks:
            h.remove()
    rows = []
    for name, module in _block_modules(unet):
        n_cross = sum(1 for n, _ in module.named_modules() if n.endswith("attn2"))
        rows.append(Block(name, type(module).__name__, n_params(module), n_cross, *shapes[name]))
    return rows


def format_blocks(rows, total=None):
    """A fixed-width table of `blocks(...)`; with `total` (all UNet params) a line for the rest.
    Taught in notebooks/04, section 2."""
    if not isinstance(rows, (list, tuple)) or not rows or not all(isinstance(b, Block) for b in rows):
        raise SDLibError(f"rows must be the list that unet_tools.blocks(sd) returns, got "
                         f"{type(rows).__name__}.")
    own = sum(b.params for b in rows)
    if total is not None and (isinstance(total, bool) or not isinstance(total, numbers.Integral)
                              or total < own):
        raise SDLibError(f"total must be None or the UNet's parameter count, "
                         f"sdlib.n_params(sd.unet), at least the blocks' own {own:,}, got {total!r}.")
    lines = [f"{'block':<14}{'class':<26}{'params':>11}  {'cross-attn':>10}  in (C, h, w) -> out"]
    for b in rows:
        lines.append(f"{b.name:<14}{b.kind:<26}{b.params:>11,}  {b.cross_attention:>10}  "
                     f"{b.in_shape} -> {b.out_shape}")
    if total is not None:
        rest = total - sum(b.params for b in rows)
        lines.append(f"{'the rest':<14}{'conv_in, time emb, conv_out':<26}{rest:>11,}")
        lines.append(f"{'total':<14}{'':<26}{total:>11,}")
    return "\n".join(lines)


# ---------------------------------------------------------------- one prediction
@torch.no_grad()
def predict_once(sd, x0, t, text_emb, generator=None, noise=None):
    """Noise clean latents x0 to timestep t, let the UNet predict, recover x0_pred.

    x0: scaled latents (B, 4, h, w); t: an int timestep (0..T-1); text_emb: (B, 77, D).
    Returns a dict with noise, x_t, eps (the predicted noise; for a v-prediction model, converted
    from its v), output (what the UNet returned) and x0_pred, all (B, 4, h, w): exactly the
    quantity the UNet was trained on, seen through one call (taught in notebooks/04).
    """
    alpha_bar = alpha_bars(sd.scheduler)  # (T,): the training schedule
    t = check_int("t", t, lo=0, hi=len(alpha_bar) - 1)
    text_emb = check_text_emb(sd, text_emb, len(x0))
    x0 = x0.to(sd.device, sd.dtype)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    noise = noise.to(sd.device, sd.dtype)
    x_t = add_noise_vp(x0, noise, float(alpha_bar[t]))  # the forward process, as in training
    t_in = torch.tensor(t, device=sd.device)
    output = sd.unet(x_t, t_in, encoder_hidden_states=text_emb).sample
    kind = prediction_type(sd.scheduler)
    return dict(noise=noise, x_t=x_t, output=output,
                eps=noise_from_output(kind, x_t, output, float(alpha_bar[t])),
                x0_pred=x0_from_output(kind, x_t, output, float(alpha_bar[t])))


def check_text_emb(sd, text_emb, batch):
    """text_emb as (B, 77, D) on the model's device and dtype, or SDLibError naming the shape.
    Used by the helpers that take text_emb; text_emb is taught in notebooks/04, section 1."""
    check_width("text_emb", text_emb, sd.text_encoder)  # (1 or B, 77, D)
    if len(text_emb) not in (1, batch):
        raise SDLibError(f"text_emb must have 1 or {batch} rows (one per latent), got {len(text_emb)}.")
    return text_emb.to(sd.device, sd.dtype).expand(batch, -1, -1)


# ---------------------------------------------------------------- cross-attention maps
class AttentionStore:
    """Running sums of cross-attention probabilities, one entry per attention layer.

    Each layer keeps (batch, h*w, tokens) averaged over heads and summed over calls (steps), so
    memory stays small however many steps are recorded. `latent_size` (h, w) is the size of the
    latents the UNet ran on, noted by `capture_cross_attention` (None when filled by hand).
    Used by capture_cross_attention; taught in notebooks/04, section 5.
    """

    def __init__(self):
        self.sums, self.calls = {}, {}
        self.latent_size = None

    def add(self, name, probs, heads):
        """probs: (batch * heads, h*w, tokens) from one layer's softmax."""
        if not isinstance(name, str):
            raise SDLibError(f"name must be the layer's name (a string), got {type(name).__name__}.")
        heads = check_int("heads", heads, lo=1)
        if not isinstance(probs, torch.Tensor) or probs.ndim != 3 or len(probs) % heads:
            got = shape_or_type(probs)
            raise SDLibError(f"probs must be a tensor (batch * heads, h*w, tokens) with "
                             f"heads = {heads}, got {got}.")
        probs = probs.detach().float()
        probs = probs.view(-1, heads, *probs.shape[1:]).mean(1)  # (batch, h*w, tokens)
        if name not in self.sums:
            self.sums[name], self.calls[name] = probs.clone(), 1
        elif self.sums[name].shape == probs.shape:
            self.sums[name] += probs
            self.calls[name] += 1
        else:
            raise SDLibError(f"{name}: this store holds attention of shape "
                             f"{tuple(self.sums[name].shape)}, now {tuple(probs.shape)} came; "
                             "use a fresh store (a new `with capture_cross_attention`) per run.")

    def maps(self, size, index=-1, layers=None):
        """Per-token maps (tokens, h, w) at `size` (an int or (h, w)): the latent size of the run,
        or a whole multiple of it (the image size) for smooth maps to lay over the picture;
        averaged over the recorded layers (all, or those whose name contains one of `layers`)
        and calls.

        index: which batch element; -1 (the default) is the text half of the last prompt when
        classifier-free guidance ran [uncond..., text...], and the only one without it.
        """
        if not self.sums:
            raise SDLibError("no cross-attention was recorded: run the UNet (e.g. sdlib.generate) "
                             "inside `with capture_cross_attention(sd) as store:` first.")
        h, w = self._check_size(size)
        batch = len(next(iter(self.sums.values())))
        index = check_int("index", index, lo=-batch, hi=batch - 1)
        layers = None if layers is None else check_prompts("layers", layers)
        picked = [n for n in self.sums if layers is None or any(k in n for k in layers)]
        if not picked:
            raise SDLibError(f"no recorded layer matches {layers}; recorded: {list(self.sums)}.")
        total = 0
        for name in picked:
            avg = self.sums[name][index] / self.calls[name]  # (h*w, tokens)
            f = max(1, round((h * w / avg.shape[0]) ** 0.5))  # this layer works at (h/f, w/f)
            if (h // f) * (w // f) != avg.shape[0]:
                raise SDLibError(f"layer {name} has {avg.shape[0]} positions, which is not "
                                 f"{h}x{w} shrunk evenly; give the latent size of the run.")
            m = avg.T.reshape(-1, 1, h // f, w // f)  # (tokens, 1, h/f, w/f)
            total = total + F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
        return (total / len(picked))[:, 0]  # (tokens, h, w)

    def _check_size(self, size):
        """size (an int or (h, w)) -> (h, w), checked against the run's latent size if noted."""
        pair = (size, size) if isinstance(size, numbers.Integral) and not isinstance(size, bool) \
            else size
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in pair)):
            raise SDLibError(f"size must be the latent size of the run, a whole number >= 1 or "
                             f"(h, w), got {size!r}.")
        if self.latent_size is not None:
            (h, w), (lh, lw) = pair, self.latent_size
            if h % lh or h * lw != w * lh:
                raise SDLibError(f"size must be the latent size of the run, {self.latent_size}, or "
                                 f"a whole multiple of it (such as the image size), got {size!r}.")
        return tuple(int(v) for v in pair)


class CaptureCrossAttnProcessor:
    """diffusers' classic `AttnProcessor`, written out, that also hands its attention
    probabilities to an `AttentionStore`. Its output equals the default processor's.
    Used by capture_cross_attention; taught in notebooks/04, section 5."""

    def __init__(self, store, name):
        self.store, self.name = store, name

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs):
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            b, c, hh, ww = hidden_states.shape
            hidden_states = hidden_states.view(b, c, hh * ww).transpose(1, 2)
        cross = encoder_hidden_states is not None
        batch, seq, _ = (encoder_hidden_states if cross else hidden_states).shape
        attention_mask = attn.prepare_attention_mask(attention_mask, seq, batch)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)  # (B, h*w, C): the image asks ...
        if not cross:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)  # (B, 77, C): ... the tokens answer
        value = attn.to_v(encoder_hidden_states)
        query, key, value = (attn.head_to_batch_dim(x) for x in (query, key, value))
        probs = attn.get_attention_scores(query, key, attention_mask)  # (B*heads, h*w, 77)
        if cross:
            self.store.add(self.name, probs, attn.heads)
        hidden_states = attn.batch_to_head_dim(torch.bmm(probs, value))
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))  # linear, dropout
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(b, c, hh, ww)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def cross_attention_layers(unet):
    """Names of the UNet's cross-attention processors (the `attn2` of every transformer block).
    Taught in notebooks/04, section 2."""
    if not hasattr(unet, "attn_processors"):
        raise SDLibError(f"unet must be a diffusers UNet (sd.unet), got {type(unet).__name__}.")
    return [n for n in unet.attn_processors if n.endswith("attn2.processor")]


@contextmanager
def capture_cross_attention(sd, store=None):
    """Record cross-attention probabilities while the block runs; restore the processors after.

    Only the cross-attention layers are swapped (self-attention keeps its fast processor), via
    `unet.set_attn_processor`, so nothing else about the model changes.
    Taught in notebooks/04, section 5.
    """
    check_sd(sd)
    if store is not None and not isinstance(store, AttentionStore):
        raise SDLibError(f"store must be None (a new one) or an AttentionStore, got "
                         f"{type(store).__name__}.")
    store = store if store is not None else AttentionStore()
    unet = sd.unet
    original = dict(unet.attn_processors)
    swapped = {n: (CaptureCrossAttnProcessor(store, n[:-len(".processor")])
                   if n.endswith("attn2.processor") else p) for n, p in original.items()}

    def note_size(module, args, kwargs):
        x_t = args[0] if args else kwargs["sample"]  # (B, C, h, w): the latents of this call
        store.latent_size = tuple(x_t.shape[-2:])

    unet.set_attn_processor(swapped)
    hook = unet.register_forward_pre_hook(note_size, with_kwargs=True)
    try:
        yield store
    finally:
        hook.remove()
        unet.set_attn_processor(original)
