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
import numbers
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from ..checks import check_int, check_number, check_one_prompt, check_prompts, check_safetensors_file, shape_or_type
from ..errors import SDLibError
from ..models.load import check_sd
from ..models.text import (SIMILARITY_DIGITS, check_tokenizer, check_width, encode_embeddings_with_grad,
                   encode_text, nearest_tokens, position_embeddings, tokenize)

SUFFIX = ".safetensors"  # the only embedding file format read and written


def token_table(sd):
    """The text encoder's token table (V, D): one row per token id, the vectors words start as.
    Taught in notebooks/03, section 2."""
    return sd.text_encoder.get_input_embeddings().weight  # (V, D)


def word_id(tokenizer, word, *, name="word"):
    """The id of a word that is one CLIP token ("red" -> id of "red</w>"), else SDLibError.

    name: what to call the word in the message (callers pass their argument's name).
    Taught in notebooks/03, sections 2 and 5."""
    check_tokenizer(tokenizer)
    if not isinstance(word, str) or not word.strip():
        raise SDLibError(f"{name} must be a word that is one CLIP token, such as 'red', got "
                         f"{word!r}.")
    ids = tokenizer(word, add_special_tokens=False).input_ids
    if len(ids) != 1:
        raise SDLibError(f"{name} {word!r} is {len(ids)} CLIP tokens "
                         f"{tokenizer.convert_ids_to_tokens(ids)}, not one; pick a single-token "
                         "word (or add it with sdlib.embeddings.add_token).")
    return ids[0]


def word_vector(sd, word, *, name="word"):
    """The row of the token-embedding table for a one-token word: (D,).
    Taught in notebooks/03, sections 6 and 7, and notebooks/07, section 2."""
    check_sd(sd)
    return token_table(sd)[word_id(sd.tokenizer, word, name=name)].detach().clone()


def _weights(weight, like):
    """A number or a non-empty list (or 1-D tensor) of numbers -> (B,) tensor of weights on
    like's device and dtype."""
    values = weight.tolist() if isinstance(weight, torch.Tensor) else weight
    values = [values] if isinstance(values, numbers.Real) and not isinstance(values, bool) else values
    if not isinstance(values, (list, tuple)) or not values:
        raise SDLibError(f"weight must be a number or a non-empty list of numbers (0 keeps the "
                         f"first, 1 gives the second), got {weight!r}.")
    return torch.tensor([check_number("weight", v) for v in values]).to(like)


def input_embeddings(sd, prompts, vectors=None):
    """Token + position embeddings (B, 77, D), with the token vectors of chosen words replaced.

    vectors: {word: (D,) or (B, D)}, put wherever the word's token occurs; gradients reach them.
    Used by edit_embeddings; the sum is taught in notebooks/03, section 3, the edits in section 5.
    """
    check_sd(sd)
    prompts = check_prompts("prompts", prompts)
    if vectors is not None and not isinstance(vectors, dict):
        raise SDLibError(f"vectors must be None or a dict {{word: vector (D,) or (B, D)}}, got "
                         f"{type(vectors).__name__}.")
    ids = tokenize(sd.tokenizer, prompts).ids.to(sd.device)  # (B, 77)
    x = token_table(sd)[ids]  # (B, 77, D)
    for word, vec in (vectors or {}).items():
        hit = ids == word_id(sd.tokenizer, word, name="a word in vectors")  # (B, 77)
        if not hit.any(dim=1).all():
            raise SDLibError(f"{word!r} is not in every prompt {prompts}; nothing to replace.")
        check_width(f"vectors[{word!r}]", vec, sd.text_encoder, ndims=(1, 2))
        if vec.ndim == 2 and len(vec) not in (1, len(prompts)):
            raise SDLibError(f"vectors[{word!r}] has {len(vec)} rows for {len(prompts)} prompts; "
                             f"give one vector (D,) or one row per prompt.")
        vec = vec.to(sd.device, x.dtype)
        x = torch.where(hit[..., None], vec.reshape(-1, 1, x.shape[-1]), x)
    return x + position_embeddings(sd.text_encoder)  # (B, 77, D)


def edit_embeddings(sd, prompts, vectors=None):
    """Prompt(s) with replaced word vectors -> text_emb (B, 77, D), the encoder run by hand.
    Taught in notebooks/03, section 6 and notebooks/07, section 2."""
    return encode_embeddings_with_grad(sd.text_encoder, input_embeddings(sd, prompts, vectors))


def replace_word(sd, prompt, word, other):
    """text_emb (1, 77, D): `word`'s token vector replaced by `other`'s (word or (D,) vector).
    Taught in notebooks/03, sections 5 and 7."""
    check_sd(sd)
    check_one_prompt("prompt", prompt)
    word_id(sd.tokenizer, word)
    if isinstance(other, str):
        vec = word_vector(sd, other, name="other")
    elif isinstance(other, torch.Tensor):
        vec = check_width("other", other, sd.text_encoder, ndims=(1,))
    else:
        raise SDLibError(f"other must be a one-token word or a vector (D,), got "
                         f"{type(other).__name__}.")
    return edit_embeddings(sd, prompt, {word: vec})


def mix_words(sd, prompt, word, other, weight):
    """text_emb (B, 77, D): `word` in `prompt` replaced by (1 - w) * word + w * other,
    one batch item per weight (a number or a list). w=0 is the prompt, w=1 says `other`.
    Taught in notebooks/03, section 5."""
    check_one_prompt("prompt", prompt)
    a, b = word_vector(sd, word), word_vector(sd, other, name="other")  # (D,)
    w = _weights(weight, a)[:, None]  # (B, 1)
    vec = (1 - w) * a + w * b  # (B, D)
    return edit_embeddings(sd, [prompt] * len(w), {word: vec})


def mix_prompts(sd, prompt_a, prompt_b, weight):
    """text_emb (B, 77, D) = (1 - w) * enc(prompt_a) + w * enc(prompt_b), one item per weight.
    Mixed after the encoder: every position of both prompts blends, not just one word.
    Taught in notebooks/03, section 5."""
    check_one_prompt("prompt_a", prompt_a)
    check_one_prompt("prompt_b", prompt_b)
    emb = encode_text(sd, [prompt_a, prompt_b])  # (2, 77, D)
    w = _weights(weight, emb)[:, None, None]  # (B, 1, 1)
    return (1 - w) * emb[0] + w * emb[1]  # (B, 77, D)


def add_token(sd, token, vector, *, replace=False):
    """Add `token` to the tokenizer and `vector` (D,) as a new row of the token table, in place.

    The same steps as diffusers' `load_textual_inversion`: resize the table, set the new row.
    Afterwards plain prompts containing the token use it. Returns the token's id.
    replace=True makes the call safe to repeat (a notebook cell re-run in place): a token that an
    earlier add_token added keeps its id and gets `vector` as its row, and nothing grows. A word of
    the tokenizer's own vocabulary ("cat", "<|endoftext|>") is never replaced: SDLibError either
    way. Taught in notebooks/03, sections 5 and 6.
    """
    check_sd(sd)
    if not isinstance(token, str) or not token.strip() or token != token.strip():
        raise SDLibError(f"token must be a new name without spaces at its ends, such as "
                         f"'<my-word>', got {token!r}.")
    if not isinstance(replace, bool):
        raise SDLibError(f"replace must be True or False, got {replace!r}.")
    known = token in sd.tokenizer.get_vocab()
    token_id = sd.tokenizer.convert_tokens_to_ids(token) if known else None
    if known and token_id < sd.tokenizer.vocab_size:  # the base vocabulary, not an added token
        raise SDLibError(f"token {token!r} is already in the tokenizer as one of its own words "
                         f"(id {token_id}); add_token never overwrites those: choose another "
                         "name, such as '<my-word>'.")
    if known and not replace:
        raise SDLibError(f"token {token!r} is already in the tokenizer (added earlier, id "
                         f"{token_id}); pass replace=True to set its vector again, or choose "
                         "another name.")
    check_width("vector", vector, sd.text_encoder, ndims=(1,))
    if not known:
        sd.tokenizer.add_tokens(token)
        try:  # the new row is overwritten below: skip transformers' mean+covariance initialisation
            sd.text_encoder.resize_token_embeddings(len(sd.tokenizer), mean_resizing=False)
        except TypeError:  # transformers < 4.46
            sd.text_encoder.resize_token_embeddings(len(sd.tokenizer))
        token_id = sd.tokenizer.convert_tokens_to_ids(token)
    set_row(sd, token_id, vector)
    return token_id


def set_row(sd, token_id, vector):
    """Row `token_id` of the (frozen) token table := vector (D,), in the table's dtype: how a new
    word's vector is written (`add_token`) and how textual inversion writes back each step.
    Taught in notebooks/03, section 6 and notebooks/07."""
    table = sd.text_encoder.get_input_embeddings().requires_grad_(False)
    with torch.no_grad():
        table.weight[token_id] = vector.to(table.weight)


def _check_path(path):
    if not isinstance(path, (str, Path)):
        raise SDLibError(f"path must be a file path (str or pathlib.Path) ending in {SUFFIX}, "
                         f"got {type(path).__name__}.")
    return Path(path)


def save_embedding(path, token, vector, **metadata):
    """Save {token: (D,)} as safetensors (diffusers' learned_embeds layout); metadata as strings.
    Taught in notebooks/03, section 7."""
    path = _check_path(path)
    if path.suffix != SUFFIX:
        raise SDLibError(f"path must end in {SUFFIX} (the format diffusers and sdlib read), got "
                         f"{path.name!r}.")
    if not isinstance(token, str) or not token.strip():
        raise SDLibError(f"token must be the name the vector is saved under, such as '<my-word>', "
                         f"got {token!r}.")
    if not (isinstance(vector, torch.Tensor) and vector.is_floating_point()
            and (vector.ndim == 1 or (vector.ndim == 2 and len(vector) == 1))):
        got = shape_or_type(vector)
        raise SDLibError(f"vector must be one float vector of shape (D,) or (1, D), got {got}.")
    vector = vector.detach().float().cpu().reshape(-1).contiguous()  # (D,)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({token: vector}, str(path), metadata={k: str(v) for k, v in metadata.items()})
    return path


def load_embedding(path):
    """(token, vector (D,), metadata) from a one-token textual-inversion safetensors file.
    Taught in notebooks/03, sections 6 and 7."""
    path = _check_path(path)
    if path.suffix != SUFFIX or not path.is_file():
        raise SDLibError(f"path must be an existing {SUFFIX} embedding file, got {path.name!r}.")
    check_safetensors_file(path)
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


def load_textual_inversion(sd, path, token=None, *, replace=False):
    """Load a learned embedding file into `sd` (tokenizer + token table); returns the token.

    replace=True: loading the same token again (a re-run cell) sets its row again, see `add_token`.
    Taught in notebooks/03, sections 6 and 7.
    """
    check_sd(sd)
    if token is not None and not isinstance(token, str):
        raise SDLibError(f"token must be None (the file's own) or a string, got "
                         f"{type(token).__name__}.")
    name, vector, _ = load_embedding(path)
    token = name if token is None else token
    if vector.shape[-1] != token_table(sd).shape[-1]:
        raise SDLibError(f"{Path(path).name} holds a vector of width {vector.shape[-1]} but this "
                         f"model's text encoder has width {token_table(sd).shape[-1]}: it was learned "
                         "on another model.")
    add_token(sd, token, vector, replace=replace)
    return token


def nearest_words(sd, vector, k=5, words=None, exclude=()):
    """The k entries most cosine-similar to `vector` (D,): over the whole token table (raw CLIP
    tokens, "red</w>"), or among `words` only. Returns [(token or word, similarity)].
    Taught in notebooks/03, section 7 and notebooks/07, section 2."""
    check_sd(sd)
    check_width("vector", vector, sd.text_encoder, ndims=(1,))
    exclude = check_prompts("exclude", exclude, allow_empty_list=True)
    if words is None:
        k = check_int("k", k, lo=1, hi=len(token_table(sd)) - len(exclude))
        found = nearest_tokens(sd.tokenizer, sd.text_encoder, vector, k=k + len(exclude))
        return [(w, s) for w, s in found if w not in exclude][:k]
    k = check_int("k", k, lo=1)
    words = [w for w in check_prompts("words", words) if w not in exclude]
    if not words:
        raise SDLibError("words must hold at least one word that is not in exclude, got none.")
    rows = torch.stack([word_vector(sd, w, name="a word in words") for w in words]).float()  # (N, D)
    sims = F.cosine_similarity(rows, vector.float().to(rows.device)[None], dim=-1)
    order = sims.argsort(descending=True)[:k]
    return [(words[i], round(float(sims[i]), SIMILARITY_DIGITS)) for i in order]
