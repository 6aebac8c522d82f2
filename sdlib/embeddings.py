"""Editing text embeddings: swap, mix and add words, and learn a new one (textual inversion).

The UNet only ever sees the (B, 77, D) output of the text encoder, and the text encoder only
sees token + position embeddings. So anything we can write as a vector can be "said":
- `edit_embeddings`: a prompt with some words' token vectors replaced, run through the encoder by
  hand (`replace_word`, `mix_words`); `mix_prompts`: a blend of two prompts' encoder outputs;
- `add_token` / `load_textual_inversion`: a new word and a new row of the token table, as
  diffusers' `load_textual_inversion` does; `learn_embedding`: textual inversion in a few lines.
Learned vectors are saved as `{token: (D,)}` safetensors files (diffusers' learned_embeds layout:
`pipe.load_textual_inversion(path)` reads them). Generate with `sdlib.generate(sd, "", text_emb=)`.
The course's own learned concept, `<purple-triangle>`, is made in `sdlib.builtin.concept`.
"""
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from . import latents as vae_helpers
from .errors import SDLibError
from .sampler import generate
from .schedule import add_noise_vp, alpha_bars, noise_from_output, prediction_type
from .text import (encode_embeddings_with_grad, encode_text, nearest_tokens, position_embeddings,
                   tokenize)



def _table(sd):
    return sd.text_encoder.get_input_embeddings().weight  # (V, D)


def word_id(tokenizer, word):
    """The id of a word that is one CLIP token ("red" -> id of "red</w>"), else SDLibError."""
    ids = tokenizer(word, add_special_tokens=False).input_ids
    if len(ids) != 1:
        raise SDLibError(f"{word!r} is {len(ids)} CLIP tokens "
                         f"{tokenizer.convert_ids_to_tokens(ids)}, not one; pick a single-token "
                         "word (or add it with sdlib.embeddings.add_token).")
    return ids[0]


def word_vector(sd, word):
    """The row of the token-embedding table for a one-token word: (D,)."""
    return _table(sd)[word_id(sd.tokenizer, word)].detach().clone()


def _weights(weight, like):
    """A number or a list -> (B,) tensor of weights on like's device and dtype."""
    return torch.tensor([weight] if isinstance(weight, (int, float)) else list(weight)).to(like)


def input_embeddings(sd, prompts, vectors=None):
    """Token + position embeddings (B, 77, D), with the token vectors of chosen words replaced.

    vectors: {word: (D,) or (B, D)}, put wherever the word's token occurs; gradients reach them.
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    ids = tokenize(sd.tokenizer, prompts).ids.to(sd.device)  # (B, 77)
    x = _table(sd)[ids]  # (B, 77, D)
    for word, vec in (vectors or {}).items():
        hit = ids == word_id(sd.tokenizer, word)  # (B, 77)
        if not hit.any(dim=1).all():
            raise SDLibError(f"{word!r} is not in every prompt {prompts}; nothing to replace.")
        vec = vec.to(sd.device, x.dtype)
        if vec.shape[-1] != x.shape[-1] or vec.ndim not in (1, 2):
            raise SDLibError(f"a vector for {word!r} must be ({x.shape[-1]},) or (B, "
                             f"{x.shape[-1]}) for this text encoder, got {tuple(vec.shape)}.")
        x = torch.where(hit[..., None], vec.reshape(-1, 1, x.shape[-1]), x)
    return x + position_embeddings(sd.text_encoder)  # (B, 77, D)


def edit_embeddings(sd, prompts, vectors=None):
    """Prompt(s) with replaced word vectors -> text_emb (B, 77, D), the encoder run by hand."""
    return encode_embeddings_with_grad(sd.text_encoder, input_embeddings(sd, prompts, vectors))


def replace_word(sd, prompt, word, other):
    """text_emb (1, 77, D): `word`'s token vector replaced by `other`'s (word or (D,) vector)."""
    vec = word_vector(sd, other) if isinstance(other, str) else other
    return edit_embeddings(sd, prompt, {word: vec})


def mix_words(sd, prompt, word, other, weight):
    """text_emb (B, 77, D): `word` in `prompt` replaced by (1 - w) * word + w * other,
    one batch item per weight (a number or a list). w=0 is the prompt, w=1 says `other`."""
    a, b = word_vector(sd, word), word_vector(sd, other)  # (D,)
    w = _weights(weight, a)[:, None]  # (B, 1)
    vec = (1 - w) * a + w * b  # (B, D)
    return edit_embeddings(sd, [prompt] * len(w), {word: vec})


def mix_prompts(sd, prompt_a, prompt_b, weight):
    """text_emb (B, 77, D) = (1 - w) * enc(prompt_a) + w * enc(prompt_b), one item per weight.
    Mixed after the encoder: every position of both prompts blends, not just one word."""
    emb = encode_text(sd, [prompt_a, prompt_b])  # (2, 77, D)
    w = _weights(weight, emb)[:, None, None]  # (B, 1, 1)
    return (1 - w) * emb[0] + w * emb[1]  # (B, 77, D)


def generate_from_embeddings(sd, text_emb, uncond_emb=None, seed=0, **kw):
    """One image per row of text_emb (B, 77, D), all from the same seed (the same starting noise),
    so differences come from the embeddings alone. uncond_emb: (1, 77, D) or None (the "")."""
    return [generate(sd, "", text_emb=e[None], uncond_emb=uncond_emb, seed=seed, **kw)
            for e in text_emb]


def add_token(sd, token, vector):
    """Add `token` to the tokenizer and `vector` (D,) as a new row of the token table, in place.

    The same steps as diffusers' `load_textual_inversion`: resize the table, set the new row.
    Afterwards plain prompts containing the token use it. Returns the new id.
    """
    if token in sd.tokenizer.get_vocab():
        raise SDLibError(f"{token!r} is already in the tokenizer; choose another name.")
    table = _table(sd)
    vector = torch.as_tensor(vector)
    if vector.shape != table.shape[1:]:
        raise SDLibError(f"the vector for {token!r} must have shape ({table.shape[1]},) for this "
                         f"text encoder, got {tuple(vector.shape)}.")
    sd.tokenizer.add_tokens(token)
    try:  # the new row is overwritten below: skip transformers' mean+covariance initialisation
        sd.text_encoder.resize_token_embeddings(len(sd.tokenizer), mean_resizing=False)
    except TypeError:  # transformers < 4.46
        sd.text_encoder.resize_token_embeddings(len(sd.tokenizer))
    new = sd.text_encoder.get_input_embeddings().requires_grad_(False)
    token_id = sd.tokenizer.convert_tokens_to_ids(token)
    new.weight[token_id] = vector.to(new.weight)
    return token_id


def save_embedding(path, token, vector, **metadata):
    """Save {token: (D,)} as safetensors (diffusers' learned_embeds layout); metadata as strings."""
    vector = torch.as_tensor(vector).detach().float().cpu().reshape(-1).contiguous()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file({token: vector}, str(path), metadata={k: str(v) for k, v in metadata.items()})
    return Path(path)


def load_embedding(path):
    """(token, vector (D,), metadata) from a one-token textual-inversion safetensors file."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        raise SDLibError(f"expected an existing .safetensors embedding file, got {path.name!r}.")
    with safe_open(str(path), framework="pt") as f:
        keys, metadata = list(f.keys()), f.metadata() or {}
        if len(keys) != 1:
            raise SDLibError(f"{path.name} holds {len(keys)} tensors; a textual-inversion file "
                             "holds one, named by its token.")
        vector = f.get_tensor(keys[0])
    if vector.ndim == 2 and vector.shape[0] == 1:
        vector = vector[0]  # diffusers' training script saves (1, D)
    if vector.ndim != 1:
        raise SDLibError(f"{path.name}: multi-vector embeddings {tuple(vector.shape)} are not "
                         "supported; expected one vector (D,).")
    return keys[0], vector, metadata


def load_textual_inversion(sd, path, token=None):
    """Load a learned embedding file into `sd` (tokenizer + token table); returns the token."""
    name, vector, _ = load_embedding(path)
    add_token(sd, token or name, vector)
    return token or name


# ---------------------------------------------------------------- learning
def denoising_loss(sd, x0, text_emb, t, noise):
    """Stable Diffusion's training loss: how well the UNet finds `noise` in x0 noised to t."""
    alpha_bar = alpha_bars(sd.scheduler)[t]  # (B,)
    x_t = add_noise_vp(x0, noise, alpha_bar)  # (B, 4, h, w), DDPM eq. 4
    output = sd.unet(x_t, t.to(sd.device), encoder_hidden_states=text_emb.to(sd.dtype)).sample
    eps = noise_from_output(prediction_type(sd.scheduler), x_t, output, alpha_bar)  # v -> eps too
    return F.mse_loss(eps.float(), noise.float())


def _noise_batch(x0, n, g, steps):
    """n random (image index, timestep, noise) draws from the CPU generator g."""
    idx, t = (torch.randint(0, hi, (n,), generator=g) for hi in (len(x0), steps))
    return idx, t, torch.randn((n, *x0.shape[1:]), generator=g).to(x0.device, x0.dtype)


def learn_embedding(sd, images, captions, init_word, steps=40, lr=None, batch_size=4, seed=0):
    """Textual inversion: one vector (D,), started at `init_word`'s, that lowers the denoising
    loss on `images` when it stands in `captions` (templates with "{}" where the token goes).

    The model is frozen; only the vector moves. The placeholder is `init_word` itself, swapped for
    the vector in the input embeddings, so the tokenizer is left alone. lr (Adam): by default
    scaled to the token table (`default_lr`), so it fits any model. Returns (vector, losses).
    """
    lr = lr or default_lr(sd)
    x0 = vae_helpers.encode(sd, images)  # (N, 4, h, w)
    prompts = [c.format(init_word) for c in captions]
    vector = word_vector(sd, init_word).float().requires_grad_()
    opt = torch.optim.Adam([vector], lr=lr)
    g = torch.Generator("cpu").manual_seed(seed)
    losses = []
    for _ in range(steps):
        idx, t, noise = _noise_batch(x0, batch_size, g, sd.scheduler.config.num_train_timesteps)
        text_emb = edit_embeddings(sd, [prompts[i] for i in idx], {init_word: vector})
        loss = denoising_loss(sd, x0[idx], text_emb, t, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return vector.detach(), losses


@torch.no_grad()
def eval_loss(sd, images, captions, word, vector=None, n=32, seed=1234, batch_size=4):
    """Mean denoising loss over n fixed (image, t, noise) draws, with `word` (or `vector` in its
    place) in the captions: the number textual inversion lowers. Same seed, same draws."""
    x0 = vae_helpers.encode(sd, images)
    idx, t, noise = _noise_batch(x0, n, torch.Generator("cpu").manual_seed(seed),
                                 sd.scheduler.config.num_train_timesteps)
    prompts = [captions[i].format(word) for i in idx]
    total = 0.0
    for k in range(0, n, batch_size):  # in small batches: 512 px UNet calls need memory
        part = slice(k, k + batch_size)
        text_emb = edit_embeddings(sd, prompts[part], None if vector is None else {word: vector})
        total += denoising_loss(sd, x0[idx[part]], text_emb, t[part], noise[part]) * len(t[part])
    return float(total) / n


def default_lr(sd):
    """A quarter of the token table's spread: a few dozen Adam steps move about a word apart."""
    return round(0.25 * float(_table(sd).float().std()), 6)


def nearest_words(sd, vector, k=5, words=None, exclude=()):
    """The k entries most cosine-similar to `vector` (D,): over the whole token table (raw CLIP
    tokens, "red</w>"), or among `words` only. Returns [(token or word, similarity)]."""
    if words is None:
        found = nearest_tokens(sd.tokenizer, sd.text_encoder, vector, k=k + len(exclude))
        return [(w, s) for w, s in found if w not in exclude][:k]
    words = [w for w in words if w not in exclude]
    rows = torch.stack([word_vector(sd, w) for w in words]).float()  # (N, D)
    sims = F.cosine_similarity(rows, vector.float().to(rows.device)[None], dim=-1)
    order = sims.argsort(descending=True)[:k]
    return [(words[i], round(float(sims[i]), 4)) for i in order]
