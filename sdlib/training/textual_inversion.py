"""Textual inversion (Gal et al. 2022): learning one word's vector so that captions with it describe
a few pictures, with the model frozen. The loss is the training objective (`sdlib.training.objective`);
the word's vector goes in through the embeddings (`sdlib.conditioning.embeddings`).

Taught in notebooks/03, section 6 (a word learned by hand, then `learn_embedding`) and notebooks/07
(a new word, `sdlib.training.finetune.train_textual_inversion`).
"""
import torch

from ..checks import check_callable, check_int, check_number, check_prompts, check_seed
from ..conditioning.embeddings import add_token, edit_embeddings, set_row, token_table, word_id, word_vector
from ..errors import SDLibError
from ..models import vae
from ..models.load import check_sd
from ..models.text import check_width
from .objective import denoising_loss, draw_t_and_noise

LR_FRACTION = 0.25  # default_lr: this fraction of the token table's spread
LR_DIGITS = 6  # default_lr is rounded, so it prints (and is saved in metadata) short


def _noise_batch(sd, x0, n, g):
    """n random (image index, timestep, noise) draws from the CPU generator g: images first."""
    idx = torch.randint(0, len(x0), (n,), generator=g)  # (n,)
    return (idx, *draw_t_and_noise(sd, x0[idx], g))


def _check_captions(sd, images, captions, word, word_name):
    """(x0, templates): the images' latents and one caption template per image, all checked."""
    captions = check_prompts("captions", captions)
    for k, c in enumerate(captions):
        if "{}" not in c:
            raise SDLibError(f"captions must be templates with {{}} where the word goes, such as "
                             f"'a photo of {{}}', got {c!r} (captions[{k}]).")
    word_id(sd.tokenizer, word, name=word_name)
    x0 = vae.encode(sd, images)  # (N, 4, h, w)
    if len(captions) != len(x0):
        raise SDLibError(f"captions must hold one template per image: {len(x0)} images, got "
                         f"{len(captions)} captions.")
    return x0, captions


def learn_embedding(sd, images, captions, init_word, steps=40, lr=None, batch_size=4, seed=0,
                    *, token=None, callback=None):
    """Textual inversion (Gal et al. 2022): one vector (D,), started at `init_word`'s, that lowers
    the denoising loss on `images` when it stands in `captions` (templates with "{}" where the
    token goes).

    The model is frozen; only the vector moves (Adam, in fp32 whatever the model's dtype).
    token=None: the placeholder is `init_word` itself, swapped for the vector in the input
        embeddings, so the tokenizer is left alone (notebooks/03, section 6).
    token="<name>": the new word is added (`add_token`, replace=True, so a re-run cell starts
        again from `init_word`), stands in the captions, and its row of the token table is set to
        the vector after every step; no other row ever changes (notebooks/07).
    lr: by default scaled to the token table (`default_lr`), so it fits any model.
    callback(step, loss): called after every step. Returns (vector, losses).
    """
    check_sd(sd)
    steps = check_int("steps", steps, lo=1)
    lr = default_lr(sd) if lr is None else check_number("lr", lr, lo=0, lo_open=True)
    batch_size = check_int("batch_size", batch_size, lo=1)
    seed = check_seed(seed)
    if callback is not None:
        check_callable("callback", callback, "(step, loss)")
    x0, templates = _check_captions(sd, images, captions, init_word, "init_word")  # (N, 4, h, w)
    vector = word_vector(sd, init_word).float().requires_grad_()  # (D,): the only thing that learns
    word = init_word if token is None else token
    token_id = None if token is None else add_token(sd, token, vector.detach(), replace=True)
    prompts = [c.format(word) for c in templates]
    opt = torch.optim.Adam([vector], lr=lr)
    g = torch.Generator("cpu").manual_seed(seed)
    losses = []
    for step in range(steps):
        idx, t, noise = _noise_batch(sd, x0, batch_size, g)
        text_emb = edit_embeddings(sd, [prompts[i] for i in idx], {word: vector})  # (B, 77, D)
        loss = denoising_loss(sd, x0[idx], text_emb, t, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if token_id is not None:
            set_row(sd, token_id, vector.detach())
        losses.append(loss.item())
        if callback is not None:
            callback(step=step, loss=losses[-1])
    return vector.detach(), losses


@torch.no_grad()
def eval_loss(sd, images, captions, word, vector=None, n=32, seed=1234, batch_size=4):
    """Mean denoising loss over n fixed (image, t, noise) draws, with `word` (or `vector` in its
    place) in the captions: the number textual inversion lowers. Same seed, same draws.
    Taught in notebooks/03, section 6."""
    check_sd(sd)
    if vector is not None:
        check_width("vector", vector, sd.text_encoder, ndims=(1,))
    n = check_int("n", n, lo=1)
    seed = check_seed(seed)
    batch_size = check_int("batch_size", batch_size, lo=1)
    x0, templates = _check_captions(sd, images, captions, word, "word")
    idx, t, noise = _noise_batch(sd, x0, n, torch.Generator("cpu").manual_seed(seed))
    prompts = [templates[i].format(word) for i in idx]
    total = 0.0
    for k in range(0, n, batch_size):  # in small batches: 512 px UNet calls need memory
        part = slice(k, k + batch_size)
        text_emb = edit_embeddings(sd, prompts[part], None if vector is None else {word: vector})
        total += denoising_loss(sd, x0[idx[part]], text_emb, t[part], noise[part]) * len(t[part])
    return float(total) / n


def default_lr(sd):
    """A quarter of the token table's spread: a few dozen Adam steps move about a word apart.
    Taught in notebooks/03, section 6 and notebooks/07, section 2."""
    check_sd(sd)
    return round(LR_FRACTION * float(token_table(sd).float().std()), LR_DIGITS)
