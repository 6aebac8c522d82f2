"""Inside SD3's MM-DiT (Esser et al. 2024, "Scaling rectified flow transformers for high-resolution
image synthesis", sec. 4 and fig. 2; DiT: Peebles & Xie 2023), one piece at a time, each equal to
diffusers' `SD3Transformer2DModel` layer it opens:

    tokens = patchify(x, p) @ W_patch + b + positions      # (B, N, D): N = (h/p)(w/p) patches
    temb   = time_text_embed(t, pooled)                     # (B, D): timestep + pooled text
    for each block:                                         # image and text tokens, two streams
        x_mod = modulate(LN(x), shift, scale)               # adaLN: (shift, scale, gate) from temb
        x, c  = x + gate * joint_attention(x_mod, c_mod)    # one softmax over image + text tokens
        ...                                                 # then an MLP, modulated the same way
    v = unpatchify(proj_out(modulate(LN(x), ...)), p)       # (B, C, h, w)

`capture_joint_attention` records, while the model runs, how much each image patch attends to each
text token (the MM-DiT counterpart of the UNet's cross-attention maps, `sdlib.models.unet`).
Taught in notebooks/11.
"""
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from ..checks import check_int
from ..errors import SDLibError


# ---------------------------------------------------------------- patches
def patchify(x, p):
    """Latents (B, C, H, W) -> patch vectors (B, (H/p)(W/p), C*p*p), patches in reading order
    (row by row), each patch's numbers ordered (channel, row, column) as the patch-embedding
    convolution's weight (D, C, p, p) reads them. Taught in notebooks/11, section 2."""
    p = check_int("p", p, lo=1)
    if not (isinstance(x, torch.Tensor) and x.ndim == 4 and x.shape[-1] % p == 0 and x.shape[-2] % p == 0):
        raise SDLibError(f"x must be latents (B, C, H, W) with H and W multiples of p = {p}, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}.")
    B, C, H, W = x.shape
    x = x.reshape(B, C, H // p, p, W // p, p)           # (B, C, h, p, w, p)
    x = x.permute(0, 2, 4, 1, 3, 5)                      # (B, h, w, C, p, p)
    return x.reshape(B, (H // p) * (W // p), C * p * p)  # (B, N, C p p)


def unpatchify(tokens, p, channels, height=None):
    """The model's output tokens (B, N, p*p*C) -> latents (B, C, h*p, w*p); each token's numbers
    ordered (row, column, channel), as SD3Transformer2DModel's last layer writes them (its
    einsum "nhwpqc->nchpwq"). height: patches per column (default: a square grid).
    Taught in notebooks/11, section 2."""
    p, channels = check_int("p", p, lo=1), check_int("channels", channels, lo=1)
    B, N, K = tokens.shape
    h = height or int(round(N ** 0.5))
    if K != p * p * channels or N % h:
        raise SDLibError(f"tokens must be (B, N, p*p*channels) = (B, N, {p * p * channels}) with N a multiple of "
                         f"height, got {tuple(tokens.shape)} (height {h}).")
    w = N // h
    x = tokens.reshape(B, h, w, p, p, channels)          # (B, h, w, p, q, C)
    x = x.permute(0, 5, 1, 3, 2, 4)                      # (B, C, h, p, w, q)
    return x.reshape(B, channels, h * p, w * p)


# ---------------------------------------------------------------- adaLN modulation
def modulate(x, shift, scale):
    """DiT's adaptive layer norm applied to normalised tokens x (B, N, D): x (1 + scale) + shift,
    with shift and scale (B, D) computed from the timestep and the pooled text (Peebles & Xie 2023,
    sec. 3.2). Taught in notebooks/11, section 4."""
    return x * (1 + scale[:, None]) + shift[:, None]


def modulation(norm, temb):
    """The six vectors an MM-DiT block's adaLN-Zero (`block.norm1` or `norm1_context`, diffusers'
    AdaLayerNormZero) makes from temb (B, D): {"shift_msa", "scale_msa", "gate_msa", "shift_mlp",
    "scale_mlp", "gate_mlp"}, each (B, D) = chunks of linear(silu(temb)).
    Taught in notebooks/11, section 4."""
    chunks = norm.linear(F.silu(temb)).chunk(6, dim=1)
    return dict(zip(("shift_msa", "scale_msa", "gate_msa", "shift_mlp", "scale_mlp", "gate_mlp"), chunks))


# ---------------------------------------------------------------- joint attention
def joint_attention(attn, x, c, key_bias=None, probabilities=True):
    """One MM-DiT attention (`block.attn`, diffusers' JointAttnProcessor2_0 written out): image
    tokens x (B, N, D) and text tokens c (B, S, D) each get their own q, k, v projections, then ONE
    softmax over all N + S keys for every query:

        P = softmax(q k^T / sqrt(d) + key_bias)     # (B, heads, N + S, N + S)
        x', c' = split(P v),  x' -> to_out,  c' -> to_add_out

    key_bias: None, or (N + S,) added to every query's logits (a key standing for n copies of
    itself: + ln n). Returns (x' (B, N, D), c' (B, S, D) or None where the block keeps no text
    output, P). probabilities=False: the same through torch's fused attention, P not formed (None):
    what training uses. Taught in notebooks/11, section 3."""
    B, N = x.shape[:2]
    heads = attn.heads

    def split(t):  # (B, L, heads * d) -> (B, heads, L, d)
        return t.view(B, -1, heads, t.shape[-1] // heads).transpose(1, 2)

    q, k, v = split(attn.to_q(x)), split(attn.to_k(x)), split(attn.to_v(x))
    if attn.norm_q is not None:  # SD3.5's QK norm (none in SD3 medium)
        q, k = attn.norm_q(q), attn.norm_k(k)
    cq, ck, cv = split(attn.add_q_proj(c)), split(attn.add_k_proj(c)), split(attn.add_v_proj(c))
    if attn.norm_added_q is not None:
        cq, ck = attn.norm_added_q(cq), attn.norm_added_k(ck)
    q, k, v = torch.cat([q, cq], 2), torch.cat([k, ck], 2), torch.cat([v, cv], 2)  # (B, heads, N + S, d)
    if probabilities:
        logits = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5  # (B, heads, N + S, N + S)
        if key_bias is not None:
            logits = logits + key_bias
        P = logits.softmax(-1)
        out = P @ v  # (B, heads, N + S, d)
    else:
        P, out = None, torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=None if key_bias is None else key_bias.to(q.dtype)[None, :])  # (1, N + S): every query
    out = out.transpose(1, 2).reshape(B, -1, heads * q.shape[-1])  # (B, N + S, D)
    x_out, c_out = out[:, :N], out[:, N:]
    c_out = None if attn.context_pre_only else attn.to_add_out(c_out)
    return attn.to_out[1](attn.to_out[0](x_out)), c_out, P


class JointAttentionStore:
    """What `capture_joint_attention` records: the names of the blocks called, in call order, and
    the image-to-text attention summed over the calls (`total`, (B, N, S): a running sum, so that a
    real SD3's 24 blocks x 28 steps of 4096 x 333 maps never pile up). Taught in notebooks/11, section 3."""

    def __init__(self):
        self.calls, self.total = [], None

    def add(self, name, maps):
        self.calls.append(name)
        self.total = maps.float() if self.total is None else self.total + maps.float()


class _Recorder:
    """A joint-attention processor that returns what diffusers' own returns (to float rounding: the
    softmax is written out) and adds the image-to-text block of P, averaged over heads, (B, N, S),
    to the store."""

    def __init__(self, store, name):
        self.store, self.name = store, name

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        x_out, c_out, P = joint_attention(attn, hidden_states, encoder_hidden_states)
        N = hidden_states.shape[1]
        self.store.add(self.name, P[:, :, :N, N:].mean(1).detach())  # (B, N patches, S text tokens)
        return x_out, c_out


@contextmanager
def capture_joint_attention(transformer):
    """Record every joint attention's image-patch-to-text-token probabilities while the
    transformer runs; yields a `JointAttentionStore` (block names in call order, the maps summed).
    The processors are restored afterwards. Taught in notebooks/11, section 3."""
    if not hasattr(transformer, "transformer_blocks"):
        raise SDLibError(f"transformer must be SD3's SD3Transformer2DModel (sd.transformer), got "
                         f"{type(transformer).__name__}.")
    original = dict(transformer.attn_processors)
    store = JointAttentionStore()
    transformer.set_attn_processor({n: _Recorder(store, n[:-len(".attn.processor")]) for n in original})
    try:
        yield store
    finally:
        transformer.set_attn_processor(original)


def token_maps(store, height, row=-1):
    """Where the image patches looked, per text token: the recorded image-to-text attention
    (`capture_joint_attention`) of batch row `row` (-1: the last, the prompt's half under
    classifier-free guidance), averaged over every recorded call (blocks and steps), as maps
    (S, height, N / height): map k says how much each patch attended to text token k.
    Taught in notebooks/11, section 3."""
    if not isinstance(store, JointAttentionStore) or not store.calls:
        raise SDLibError("store must be the filled store of `with capture_joint_attention(...) as store:` "
                         "(run the transformer inside it first).")
    mean = store.total[row] / len(store.calls)  # (N, S)
    N, S = mean.shape
    height = check_int("height", height, lo=1)
    if N % height:
        raise SDLibError(f"height must divide the {N} image patches, got {height}.")
    return mean.T.reshape(S, height, N // height)
