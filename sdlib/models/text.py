"""From a prompt to the (B, 77, D) embeddings the UNet attends to, one visible step at a time.

prompt -> tokens -> ids (BOS ... EOS, padded to 77) -> token embedding + position embedding
-> transformer encoder with a causal mask -> final layer norm. `encode_text` uses the
CLIPTextModel itself (as the pipeline does); `encode_embeddings` runs the same encoder by hand
from any input embeddings, which is what lets the course edit and mix embeddings.
Works with transformers 4.x (`text_encoder.text_model.*`) and 5.x (`text_encoder.*`): every
helper reaches the parts through `clip_text_model`.
"""
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..checks import check_int, check_prompts, describe
from .device import as_device, pick_dtype
from ..errors import PromptTruncatedWarning, SDLibError
from . import sd3
from .load import check_sd

SHOWN_CHARS = (80, 50, 25)  # the cut text quoted in a warning: whole up to 80, else head ... tail
SIMILARITY_DIGITS = 4  # cosine similarities are returned rounded, for printing


@dataclass
class Tokens:
    """Token ids (B, 77) with the readable tokens of the first prompt and what was cut.
    What tokenize returns; taught in notebooks/03, section 1."""

    ids: torch.Tensor
    tokens: list
    length: int  # tokens of the first prompt actually kept, BOS and EOS included
    cut: list  # per prompt: the words that did not fit in 77 positions


# ---------------------------------------------------------------- the parts, and checks on them
def clip_text_model(text_encoder):
    """The module holding CLIP's `embeddings`, `encoder` and `final_layer_norm`.

    transformers 5's CLIPTextModel holds them itself; 4.x wraps them in `.text_model`. Both are
    handled here, so no other helper needs to know which transformers is installed. Anything
    else (the bundle `sd`, a tokenizer) is answered with one SDLibError.
    Used by every helper here; the encoder's parts are taught in notebooks/03, sections 2 to 4.
    """
    model = getattr(text_encoder, "text_model", text_encoder)
    parts = ("embeddings", "encoder", "final_layer_norm")
    if not isinstance(model, torch.nn.Module) or not all(hasattr(model, p) for p in parts):
        raise SDLibError(f"text_encoder must be a CLIP text model (sd.text_encoder), got "
                         f"{type(text_encoder).__name__}.")
    return model


def text_width(text_encoder):
    """D: the width of every token vector and of the encoder's output (= the UNet's
    cross_attention_dim; 768 for SD v1).
    Used by the checks here; the width D is taught in notebooks/03, section 2."""
    return clip_text_model(text_encoder).embeddings.token_embedding.embedding_dim


def max_tokens(text_encoder):
    """How many positions the encoder reads: the rows of its position table (77 for CLIP).
    Used by the checks here; the 77 positions are taught in notebooks/03, sections 1 and 3."""
    return clip_text_model(text_encoder).embeddings.position_embedding.num_embeddings


def vocab_size(text_encoder):
    """Rows of the token-embedding table: every id a tokenizer may give this encoder.
    Used by check_ids; the token table is taught in notebooks/03, section 2."""
    return clip_text_model(text_encoder).embeddings.token_embedding.num_embeddings


def check_tokenizer(tokenizer):
    """`tokenizer` as given if it is a tokenizer (sd.tokenizer), else SDLibError.
    Used by tokenize; tokenizing is taught in notebooks/03, section 1."""
    if not (callable(tokenizer) and hasattr(tokenizer, "model_max_length")
            and hasattr(tokenizer, "convert_ids_to_tokens")):
        raise SDLibError(f"tokenizer must be a CLIP tokenizer (sd.tokenizer), got "
                         f"{type(tokenizer).__name__}.")
    return tokenizer


def check_width(name, x, text_encoder, ndims=(3,)):
    """x as given if it is a float tensor with ndim in `ndims` whose last axis is the text
    encoder's width D, else SDLibError: (D,) token vectors, (B, D) a batch of them, (B, 77, D)
    text embeddings.
    Used here and in embeddings; edited vectors are taught in notebooks/03, section 5."""
    width, n = text_width(text_encoder), max_tokens(text_encoder)
    if isinstance(x, torch.Tensor) and x.is_floating_point() and x.ndim in ndims \
            and x.shape[-1] == width:
        return x
    shapes = {1: f"({width},)", 2: f"(B, {width})", 3: f"(B, {n}, {width})"}
    raise SDLibError(f"{name} must be a float tensor of shape "
                     f"{' or '.join(shapes[d] for d in ndims)} ({width} = this text encoder's "
                     f"width), got {describe(x)}.")


def check_ids(name, ids, text_encoder, length=None):
    """ids as given if it is an integer tensor (B, T) of ids this encoder knows (T = `length`
    when given), else SDLibError.
    Used by the helpers here; ids are taught in notebooks/03, sections 1 and 2."""
    if isinstance(ids, Tokens):
        raise SDLibError(f"{name} must be the id tensor, got the Tokens; use tokens.ids.")
    shape = f"(B, {length if length is not None else 'T'})"
    if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.is_floating_point() \
            or ids.dtype == torch.bool or (length is not None and ids.shape[1] != length):
        raise SDLibError(f"{name} must be an integer tensor of shape {shape} of token ids "
                         f"(sdlib.tokenize(...).ids), got {describe(ids)}.")
    n = vocab_size(text_encoder)
    if ids.numel() and (ids.min() < 0 or ids.max() >= n):
        raise SDLibError(f"{name} must hold token ids in 0..{n - 1} for this text encoder, got "
                         f"ids from {int(ids.min())} to {int(ids.max())}.")
    return ids


# ---------------------------------------------------------------- prompt -> ids
def tokenize(tokenizer, prompts, warn=True):
    """Tokenize and pad to 77 like the pipeline; report (and warn about) truncation.
    Taught in notebooks/03, section 1 (and used in notebooks/00, section 2)."""
    check_tokenizer(tokenizer)
    prompts = check_prompts("prompts", prompts)
    if not isinstance(warn, bool):
        raise SDLibError(f"warn must be True or False, got {warn!r}.")
    n = tokenizer.model_max_length
    ids = tokenizer(prompts, padding="max_length", max_length=n, truncation=True,
                    return_tensors="pt").input_ids  # (B, 77)
    full = tokenizer(prompts, padding="longest", return_tensors="pt", verbose=False).input_ids
    cut = []
    whole, head, tail = SHOWN_CHARS
    for p, row in zip(prompts, full):
        extra = row[n - 1:-1] if row.shape[0] > n else row[:0]  # tokens after the 76th
        text = tokenizer.decode(extra[extra != tokenizer.pad_token_id]).strip()
        cut.append(text)
        if text and warn:
            shown = text if len(text) <= whole else f"{text[:head]} ... {text[-tail:]}"
            warnings.warn(f"prompt is {row.shape[0]} tokens but CLIP reads {n} "
                          f"(BOS + {n - 2} + EOS); this was cut: {shown!r}",
                          PromptTruncatedWarning, stacklevel=2)
    tokens = tokenizer.convert_ids_to_tokens(ids[0])
    length = int((ids[0] != tokenizer.pad_token_id).sum()) + 1  # + the EOS, same id as pad
    return Tokens(ids=ids, tokens=tokens[:length], length=length, cut=cut)


@torch.no_grad()
def encode_text(sd, prompts):
    """Prompt(s) -> text embeddings (B, 77, D) exactly as StableDiffusionPipeline computes them;
    for SD3 (a transformer bundle) a `sd3.JointText` (tokens (B, 77 + 256, J), pooled (B, P))
    exactly as StableDiffusion3Pipeline does with no T5.
    Taught in notebooks/03, sections 1 and 4 (and used in notebooks/00, section 2; SD3's in notebooks/11)."""
    check_sd(sd)
    ids = tokenize(sd.tokenizer, prompts).ids.to(sd.device)
    if sd.transformer is not None:  # SD3: two CLIPs, each with its own tokenizer
        ids_2 = tokenize(sd.tokenizer_2, prompts, warn=False).ids.to(sd.device)
        return sd3.joint_text(sd.text_encoders, ids, ids_2,
                              joint_attention_dim=sd.transformer.config.joint_attention_dim)
    return sd.text_encoder(ids)[0]  # last_hidden_state, (B, 77, D)


# ---------------------------------------------------------------- ids -> embeddings, by hand
def token_embeddings(text_encoder, ids):
    """Rows of the token-embedding table: (B, 77) ids -> (B, 77, D).
    Taught in notebooks/03, section 2."""
    check_ids("ids", ids, text_encoder)
    return clip_text_model(text_encoder).embeddings.token_embedding(ids)


def position_embeddings(text_encoder):
    """The position-embedding table, one row per position: (1, 77, D).
    Taught in notebooks/03, section 3."""
    table = clip_text_model(text_encoder).embeddings.position_embedding.weight  # (77, D)
    return table[None]


def embed(text_encoder, ids):
    """Token + position embeddings: what enters the transformer, (B, 77, D).
    Taught in notebooks/03, section 3 (the sum, by hand)."""
    check_ids("ids", ids, text_encoder, length=max_tokens(text_encoder))
    return token_embeddings(text_encoder, ids) + position_embeddings(text_encoder)


def causal_mask(n, dtype, device):
    """(1, 1, n, n) additive mask: position i may attend to positions <= i only.
    Taught in notebooks/03, section 4."""
    n = check_int("n", n, lo=1)
    device = as_device(device)
    dtype = pick_dtype(device, dtype)
    mask = torch.full((n, n), torch.finfo(dtype).min, dtype=dtype, device=device)
    return mask.triu(1)[None, None]


def _attention(attn, x, mask):
    """Multi-head self-attention of one CLIP layer, written out. x: (B, T, D).

    softmax(Q K^T / sqrt(d) + mask) V, "Attention is all you need" (Vaswani et al. 2017) eq. 1,
    per head; the causal mask makes CLIP's text tower read left to right (Radford et al. 2021)."""
    B, T, D = x.shape
    h = attn.num_heads
    q, k, v = (p(x).view(B, T, h, D // h).transpose(1, 2)
               for p in (attn.q_proj, attn.k_proj, attn.v_proj))  # (B, h, T, D/h)
    weights = (q @ k.transpose(-1, -2)) * attn.scale + mask  # (B, h, T, T)
    out = weights.softmax(-1) @ v  # (B, h, T, D/h)
    return attn.out_proj(out.transpose(1, 2).reshape(B, T, D))


@torch.no_grad()
def encode_embeddings(text_encoder, input_embeds):
    """Run CLIP's transformer by hand from input embeddings (B, 77, D) -> (B, 77, D).

    Equal to `text_encoder(ids)[0]` when `input_embeds = embed(text_encoder, ids)`.
    Taught in notebooks/03, sections 4 and 5.
    """
    model = clip_text_model(text_encoder)
    x = check_width("input_embeds", input_embeds, text_encoder)
    mask = causal_mask(x.shape[1], x.dtype, x.device)
    for layer in model.encoder.layers:
        x = x + _attention(layer.self_attn, layer.layer_norm1(x), mask)
        x = x + layer.mlp(layer.layer_norm2(x))
    return model.final_layer_norm(x)


def nearest_tokens(tokenizer, text_encoder, vector, k=5):
    """The k vocabulary entries whose token embedding is most cosine-similar to `vector` (D,).
    Used by embeddings.nearest_words; taught in notebooks/03, section 7."""
    check_tokenizer(tokenizer)
    check_width("vector", vector, text_encoder, ndims=(1,))
    table = clip_text_model(text_encoder).embeddings.token_embedding.weight  # (V, D)
    k = check_int("k", k, lo=1, hi=len(table))
    sims = F.cosine_similarity(table, vector[None].to(table), dim=-1)
    top = sims.topk(k)
    return [(tokenizer.convert_ids_to_tokens(int(i)), round(float(s), SIMILARITY_DIGITS))
            for s, i in zip(top.values, top.indices)]


def embedding_layer(text_encoder):
    """The text model's own embedding layer (token + position), to check `embed` against.
    Taught in notebooks/03, section 3."""
    return clip_text_model(text_encoder).embeddings


def encode_embeddings_with_grad(text_encoder, input_embeds):
    """`encode_embeddings` with gradients kept: learning an input embedding needs them.

    Same code (the undecorated function), so the two can never drift apart.
    Used by textual inversion; taught in notebooks/03, section 6 and notebooks/07, section 2.
    """
    return encode_embeddings.__wrapped__(text_encoder, input_embeds)
