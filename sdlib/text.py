"""From a prompt to the (B, 77, D) embeddings the UNet attends to, one visible step at a time.

prompt -> tokens -> ids (BOS ... EOS, padded to 77) -> token embedding + position embedding
-> transformer encoder with a causal mask -> final layer norm. `encode_text` uses the
CLIPTextModel itself (as the pipeline does); `encode_embeddings` runs the same encoder by hand
from any input embeddings, which is what lets the course edit and mix embeddings.
Works with transformers 4.x (`text_encoder.text_model.*`) and 5.x (`text_encoder.*`).
"""
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import PromptTruncatedWarning


@dataclass
class Tokens:
    """Token ids (B, 77) with the readable tokens of the first prompt and what was cut."""

    ids: torch.Tensor
    tokens: list
    length: int  # tokens of the first prompt actually kept, BOS and EOS included
    cut: list  # per prompt: the words that did not fit in 77 positions


def _text_model(text_encoder):
    """The module holding embeddings/encoder/final_layer_norm (4.x: .text_model; 5.x: itself)."""
    return getattr(text_encoder, "text_model", text_encoder)


def tokenize(tokenizer, prompts, warn=True):
    """Tokenize and pad to 77 like the pipeline; report (and warn about) truncation."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    n = tokenizer.model_max_length
    ids = tokenizer(prompts, padding="max_length", max_length=n, truncation=True,
                    return_tensors="pt").input_ids  # (B, 77)
    full = tokenizer(prompts, padding="longest", return_tensors="pt", verbose=False).input_ids
    cut = []
    for p, row in zip(prompts, full):
        extra = row[n - 1:-1] if row.shape[0] > n else row[:0]  # tokens after the 76th
        text = tokenizer.decode(extra[extra != tokenizer.pad_token_id]).strip()
        cut.append(text)
        if text and warn:
            shown = text if len(text) <= 80 else f"{text[:50]} ... {text[-25:]}"
            warnings.warn(f"prompt is {row.shape[0]} tokens but CLIP reads {n} "
                          f"(BOS + 75 + EOS); this was cut: {shown!r}", PromptTruncatedWarning,
                          stacklevel=2)
    tokens = tokenizer.convert_ids_to_tokens(ids[0])
    length = int((ids[0] != tokenizer.pad_token_id).sum()) + 1  # + the EOS, same id as pad
    return Tokens(ids=ids, tokens=tokens[:length], length=length, cut=cut)


@torch.no_grad()
def encode_text(sd, prompts):
    """Prompt(s) -> text embeddings (B, 77, D) exactly as StableDiffusionPipeline computes them."""
    ids = tokenize(sd.tokenizer, prompts).ids.to(sd.device)
    return sd.text_encoder(ids)[0]  # last_hidden_state, (B, 77, D)


def token_embeddings(text_encoder, ids):
    """Rows of the token-embedding table: (B, 77) ids -> (B, 77, D)."""
    return _text_model(text_encoder).embeddings.token_embedding(ids)


def position_embeddings(text_encoder):
    """The position-embedding table, one row per position: (1, 77, D)."""
    table = _text_model(text_encoder).embeddings.position_embedding.weight  # (77, D)
    return table[None]


def embed(text_encoder, ids):
    """Token + position embeddings: what enters the transformer, (B, 77, D)."""
    return token_embeddings(text_encoder, ids) + position_embeddings(text_encoder)


def causal_mask(n, dtype, device):
    """(1, 1, n, n) additive mask: position i may attend to positions <= i only."""
    mask = torch.full((n, n), torch.finfo(dtype).min, dtype=dtype, device=device)
    return mask.triu(1)[None, None]


def _attention(attn, x, mask):
    """Multi-head self-attention of one CLIP layer, written out. x: (B, T, D)."""
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
    """
    model = _text_model(text_encoder)
    x = input_embeds
    mask = causal_mask(x.shape[1], x.dtype, x.device)
    for layer in model.encoder.layers:
        x = x + _attention(layer.self_attn, layer.layer_norm1(x), mask)
        x = x + layer.mlp(layer.layer_norm2(x))
    return model.final_layer_norm(x)


def nearest_tokens(tokenizer, text_encoder, vector, k=5):
    """The k vocabulary entries whose token embedding is most cosine-similar to `vector` (D,)."""
    table = _text_model(text_encoder).embeddings.token_embedding.weight  # (V, D)
    sims = F.cosine_similarity(table, vector[None].to(table), dim=-1)
    top = sims.topk(k)
    return [(tokenizer.convert_ids_to_tokens(int(i)), round(float(s), 4))
            for s, i in zip(top.values, top.indices)]


def embedding_layer(text_encoder):
    """The text model's own embedding layer (token + position), to check `embed` against."""
    return _text_model(text_encoder).embeddings


def encode_embeddings_with_grad(text_encoder, input_embeds):
    """`encode_embeddings` with gradients kept: learning an input embedding needs them.

    Same code (the undecorated function), so the two can never drift apart.
    """
    return encode_embeddings.__wrapped__(text_encoder, input_embeds)
