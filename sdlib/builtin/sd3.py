"""The built-in SD3 in miniature: Stable Diffusion 3's parts and pipeline, at the built-in model's size.

Exactly the classes of `stabilityai/stable-diffusion-3-medium-diffusers`, only narrower, so that it
loads with `diffusers.StableDiffusion3Pipeline.from_pretrained(folder)` offline and trains on a CPU:

- transformer: `SD3Transformer2DModel` (MM-DiT), on the built-in VAE's 16x16x4 latents of 128 px
  pictures, cut into 1x1 patches (SD3: 2x2; why, at TRANSFORMER_CONFIG): 256 image tokens, in joint
  attention with the text tokens.
- text_encoder, text_encoder_2: two `CLIPTextModelWithProjection` on the real CLIP vocabulary
  (SD3's CLIP-L and OpenCLIP bigG, 768 and 1280 wide; here 16 and 32, the same proportion of about
  one to two, kept small because each holds a row for each of the 49408 tokens of the vocabulary). The pipeline
  takes each one's penultimate hidden states (77 tokens), concatenates them along the features
  (16 + 32 = 48, SD3: 768 + 1280 = 2048) and pads them
  with zeros to `joint_attention_dim`; the pooled prompt is the two projected EOS vectors side by
  side (16 + 32 = `pooled_projection_dim`). `sdlib.models.sd3.joint_text` does exactly that.
- text_encoder_3 (SD3's T5-XXL): none. The pipeline then appends `max_sequence_length` (256 by
  default) all-zero tokens to the 77 CLIP tokens: the transformer reads 77 + 256 context tokens.
- vae: the built-in model's VAE (4 latent channels, not SD3's 16), with SD3's `shift_factor`
  (0 here) and the built-in `scaling_factor`.
- scheduler: `FlowMatchEulerDiscreteScheduler` with the built-in flow model's config
  (`sdlib.models.flow.FLOW_SCHEDULER_CONFIG`, shift 3).

The weights are stored in float16 (half the bytes) and the text encoders' configs say float32, so
`StableDiffusion3Pipeline.from_pretrained(folder, text_encoder_3=None, tokenizer_3=None)` loads every
part in float32, ready for a CPU (diffusers' models load in float32 unless told, transformers'
in their config's dtype). `build_sd3(folder, seed)` writes a randomly initialised folder; `python -m sdlib.builtin.train_sd3`
trains the transformer and both text encoders from scratch with flow matching and exports one.
"""
import json
import math
from pathlib import Path

import torch

from ..errors import SDLibError
from ..models.clip_tokenizer import BOS_ID, EOS_ID, MAX_LENGTH, VOCAB_SIZE
from ..models.flow import FLOW_SCHEDULER_CONFIG
from ..models.mmdit import joint_attention
from ..models.sd3 import MAX_SEQUENCE_LENGTH, write_sd3_folder
from . import model

SEED = 0
LATENT_SIZE = model.IMAGE_SIZE // 8  # 16: the built-in VAE's latents of 128 px pictures

# SD3's two CLIPs: CLIP-L (quick_gelu) and OpenCLIP bigG (gelu), here 16 and 32 wide, 2 layers each.
# Two layers, because the pipeline reads the penultimate hidden states: with one layer they would
# be the token + position embeddings alone; the last layer only feeds the pooled vector.
TEXT_CONFIG = dict(
    vocab_size=VOCAB_SIZE, hidden_size=16, intermediate_size=64, num_hidden_layers=2,
    num_attention_heads=2, max_position_embeddings=MAX_LENGTH, hidden_act="quick_gelu",
    bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=EOS_ID, projection_dim=16,
)
TEXT_CONFIG_2 = dict(TEXT_CONFIG, hidden_size=32, intermediate_size=128, projection_dim=32, hidden_act="gelu")

# Patch size 1, not SD3's 2. SD3 cuts its 128 x 128 latents (1024 px) into 2 x 2 patches: 4096 tokens,
# each 16 x 16 pixels of a picture whose objects span hundreds of pixels. 2 x 2 patches of the
# built-in 16 x 16 latents would give 64 tokens, each 16 x 16 pixels of a 128 px picture, and a shape
# spans two or three of them. Measured (training/sd3-builtin.md, run 2): at patch 2 the model learned
# colour (93.8 %) but drew every shape as the same blob (shape at chance, 18.8 %, from 44,000
# training pictures to 150,000). Patch 1 gives 256 tokens of 8 x 8 pixels, a shape spans four to
# eight, and a training step costs 2.6 times as much.
TRANSFORMER_CONFIG = dict(
    sample_size=LATENT_SIZE, patch_size=1, in_channels=4, out_channels=4,
    num_layers=4, attention_head_dim=32, num_attention_heads=4,   # width 128
    joint_attention_dim=128,     # the CLIP features (16 + 32) padded with zeros to it, as SD3 pads 2048 to 4096
    caption_projection_dim=128,  # = the width: context_embedder maps joint_attention_dim to it
    pooled_projection_dim=TEXT_CONFIG["projection_dim"] + TEXT_CONFIG_2["projection_dim"],  # 48
    pos_embed_max_size=32,       # sin-cos positions for up to 32x32 patches (256 px pictures)
)

def dit_init(transformer):
    """DiT's initialisation (Peebles & Xie 2023, sec. 3.2; MM-DiT's blocks are DiT's): Xavier-uniform
    linear layers with zero biases, and every adaptive-norm modulation and the output projection
    zero, so each block starts as the identity ("adaLN-Zero") and the first output is 0.
    diffusers' class has no init of its own (it expects trained weights). In place; returns it."""
    for m in transformer.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(m.weight)
            torch.nn.init.zeros_(m.bias)
    for name, m in transformer.named_modules():
        if name.endswith(("norm1.linear", "norm1_context.linear", "norm_out.linear")) or name == "proj_out":
            torch.nn.init.zeros_(m.weight)
            torch.nn.init.zeros_(m.bias)
    return transformer


def new_parts(seed=SEED):
    """The trained parts, randomly initialised from `seed`: {"transformer", "text_encoder",
    "text_encoder_2"}, float32."""
    from diffusers import SD3Transformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    transformer = dit_init(SD3Transformer2DModel(**TRANSFORMER_CONFIG))
    torch.manual_seed(seed + 1)
    text = CLIPTextModelWithProjection(CLIPTextConfig(**TEXT_CONFIG))
    torch.manual_seed(seed + 2)
    text_2 = CLIPTextModelWithProjection(CLIPTextConfig(**TEXT_CONFIG_2))
    return {"transformer": transformer, "text_encoder": text, "text_encoder_2": text_2}


def repatch(state, patch_size):
    """A transformer's weights `state` moved to another patch size p (from 2 to 1: one token per
    latent pixel), for a warm start. The patch embedding (D, C, q, q) becomes (D, C, p, p) answering a
    patch of constant latents as the old one answered its patch of the same constant (each new
    kernel entry is the sum of the r x r old entries it covers, r = q / p); the output layer's p*p*C
    numbers per token are the old ones' means over the positions each new position covers. The sin-cos positions are left out: the
    model computes them from its config. Everything else is shape-for-shape the same."""
    state = {k: v for k, v in state.items() if k != "pos_embed.pos_embed"}
    w = state["pos_embed.proj.weight"]  # (D, C, q, q)
    D, C, q = w.shape[0], w.shape[1], w.shape[-1]
    p = patch_size
    if q == p:
        return state
    if q % p:
        raise SDLibError(f"patch_size must divide the weights' patch size {q}, got {p}.")
    r = q // p  # old positions per new position, along each side
    state["pos_embed.proj.weight"] = w.reshape(D, C, p, r, p, r).sum((3, 5))  # same total over the patch
    out_w, out_b = state["proj_out.weight"], state["proj_out.bias"]  # (q*q*C, D), rows ordered (row, column, channel)
    state["proj_out.weight"] = out_w.reshape(p, r, p, r, C, D).mean((1, 3)).reshape(p * p * C, D)
    state["proj_out.bias"] = out_b.reshape(p, r, p, r, C).mean((1, 3)).reshape(p * p * C)
    return state


def builtin_vae_folder():
    """The built-in (SD v1-style) model folder whose VAE this model shares."""
    return model.builtin_path()


def sd3_vae(source=None):
    """The built-in VAE as SD3's pipeline reads it: the weights of `source` (a model folder with a
    vae/, by default the built-in model), its scaling_factor, and shift_factor 0 (the pipeline
    decodes latents / scaling_factor + shift_factor). float32, frozen."""
    from diffusers import AutoencoderKL

    from .train import _weights

    source = Path(source or builtin_vae_folder())
    scale = json.loads((source / "vae" / "config.json").read_text())["scaling_factor"]
    vae = AutoencoderKL(**dict(model.VAE_CONFIG, scaling_factor=scale, shift_factor=0.0))
    vae.load_state_dict(_weights(source, "vae"))
    return vae.eval().requires_grad_(False)


def save_sd3(folder, parts, vae, dtype=torch.float16, note="", max_sequence_length=MAX_SEQUENCE_LENGTH):
    """Write the miniature as a complete StableDiffusion3Pipeline folder (`sdlib.models.sd3.save_sd3`:
    safetensors, float16 by default, loaded as float32) from the trained `parts` (`new_parts`' keys)
    and `vae`, with the built-in flow scheduler and SD v1's CLIP tokenizer twice; an existing SD3
    folder is replaced, any other folder left alone (an error)."""
    readme = (
        "# sdlib built-in SD3 in miniature\n\nStableDiffusion3Pipeline layout: SD3Transformer2DModel, two "
        "CLIPTextModelWithProjection, no T5, the built-in VAE. See sdlib/builtin/sd3.py.\n"
        "Load with `StableDiffusion3Pipeline.from_pretrained(folder, text_encoder_3=None, "
        "tokenizer_3=None)` (no T5; the float16 weights load as float32) or `sdlib.load_sd(folder)`; call it with "
        f"max_sequence_length={max_sequence_length}"
        f"{' (the default)' if max_sequence_length == 256 else ''}, the zero T5 tokens it was trained with."
        f"\n\n{note}")
    return write_sd3_folder(folder, {**parts, "vae": vae}, FLOW_SCHEDULER_CONFIG, dtype=dtype, readme=readme)


def build_sd3(folder, seed=SEED, vae_source=None):
    """A randomly initialised miniature SD3 (transformer and text encoders from `seed`, the
    built-in VAE) written to `folder` in the diffusers layout; returns the folder."""
    return save_sd3(folder, new_parts(seed), sd3_vae(vae_source), note=f"Randomly initialised from seed {seed}.\n")


def load_sd3(folder):
    """StableDiffusion3Pipeline.from_pretrained(folder) with no T5 (diffusers asks for
    `text_encoder_3=None, tokenizer_3=None` to be said), float32."""
    from diffusers import StableDiffusion3Pipeline

    return StableDiffusion3Pipeline.from_pretrained(folder, text_encoder_3=None, tokenizer_3=None)


class RepeatedTokenAttnProcessor:
    """SD3's joint attention (`sdlib.models.mmdit.joint_attention`, diffusers' `JointAttnProcessor2_0`
    written out) in which the last context token stands for `n` identical copies of itself: its
    attention logit gets + ln n.

    Why it is exact: with no T5, the pipeline's last `max_sequence_length` context tokens are all
    zero, so `context_embedder` turns them into the same vector, and every block treats tokens alike
    except in attention: they stay identical all the way. In softmax attention, n identical keys
    (with their identical values) weigh exactly as one key whose logit is raised by ln n. So the
    transformer on 77 + 1 context tokens with this processor gives what it gives on 77 + n with the
    pipeline's processor (tests/test_sd3_builtin.py checks it), at the cost of 78 tokens instead of
    333: training is about 3x faster on a CPU. Training only; the exported model has diffusers' own."""

    def __init__(self, n):
        self.n = int(n)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        L = hidden_states.shape[1] + encoder_hidden_states.shape[1]  # image + text tokens
        bias = torch.zeros(L, dtype=hidden_states.dtype, device=hidden_states.device)
        bias[-1] = math.log(self.n)  # the last key counts n times
        x_out, c_out, _ = joint_attention(attn, hidden_states, encoder_hidden_states, key_bias=bias,
                                          probabilities=False)
        return x_out, c_out


def compact_zero_tokens(transformer, n=MAX_SEQUENCE_LENGTH):
    """Set `RepeatedTokenAttnProcessor(n)` on the transformer's blocks: it then expects the
    context `joint_text(..., max_sequence_length=1)` (77 + 1 tokens) and computes what the
    pipeline's 77 + n give. n = 0 (no zero tokens): diffusers' own processor. Returns the
    number of zero tokens to encode (1 or 0)."""
    from diffusers.models.attention_processor import JointAttnProcessor2_0

    transformer.set_attn_processor(RepeatedTokenAttnProcessor(n) if n > 1 else JointAttnProcessor2_0())
    return min(n, 1)


def parameter_counts(parts):
    """{name: number of parameters} of a dict of modules."""
    return {k: sum(p.numel() for p in m.parameters()) for k, m in parts.items()}


def folder_megabytes(folder):
    """The size of every file under `folder`, in MB (10^6 bytes)."""
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file()) / 1e6
