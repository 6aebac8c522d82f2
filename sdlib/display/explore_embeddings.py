"""An explorer for word mixing: one slider blends one word's token vector into another's.

Why: "between red and blue" is not a word, but it is a vector, and the model will draw it. Moving
the weight from 0 (the prompt as written) to 1 (the other word) shows where along the way the
picture changes, and past 1 or below 0 what the model makes of vectors no word has. The two
endpoints are drawn beside the mix, from the same seed, so only the words differ.

    sdlib.explore_embeddings.explorer(sd, "a large red circle", "red", "blue")   # in a notebook

Taught in notebooks/03.
"""
from ..checks import check_int, check_number, check_seed
from ..conditioning.embeddings import mix_words, nearest_words, word_id, word_vector
from ..sampling.sampler import generate_from_embeddings
from ..errors import SDLibError
from ..models.load import check_sd
from ..models.text import tokenize

WEIGHTS = (-0.5, 1.5)  # the slider's ends: a little past each word, where no word is


def _check_words(sd, prompt, word, other):
    """sd a bundle; prompt, word and other strings; word and other one CLIP token each, and
    `word` in the prompt (the one to be mixed)."""
    check_sd(sd)
    for name, value in (("prompt", prompt), ("word", word), ("other", other)):
        if not isinstance(value, str):
            raise SDLibError(f"{name} must be a string, got {value!r:.60}.")
    word_id(sd.tokenizer, other)  # one CLIP token, or SDLibError
    if word_id(sd.tokenizer, word) not in tokenize(sd.tokenizer, prompt, warn=False).ids[0]:
        raise SDLibError(f"word {word!r} is not in the prompt {prompt!r}; nothing to mix.")


def render(sd, prompt, word, other, weight, seed=0, num_steps=15, cache=None):
    """Three images from one seed: (the prompt, `word` mixed with `other` at `weight`, `other`).

    cache: a dict reused between calls, so that moving the slider only draws the middle image.
    Used by explorer; taught in notebooks/03, section 5.
    """
    _check_words(sd, prompt, word, other)
    weight = check_number("weight", weight)
    if cache is not None and not isinstance(cache, dict):
        raise SDLibError(f"cache must be None or a dict, got {type(cache).__name__}.")
    cache = {} if cache is None else cache
    images = []
    for w in (0.0, round(float(weight), 4), 1.0):
        key = (prompt, word, other, w, seed, num_steps)
        if key not in cache:
            text_emb = mix_words(sd, prompt, word, other, w)  # (1, 77, D)
            cache[key] = generate_from_embeddings(sd, text_emb, seed=seed, num_steps=num_steps)[0]
        images.append(cache[key])
    return tuple(images)


def explorer(sd, prompt="a large red circle", word="red", other="blue", seed=0, num_steps=15,
             words=None):
    """An ipywidgets panel: a weight slider from -0.5 to 1.5 between `word` and `other`.

    words: if given, the title also names the nearest of these words to the mixed vector.
    Taught in notebooks/03, section 5.
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt

    from .plot import show_images

    _check_words(sd, prompt, word, other)  # one clear error, before the widget (which hides them)
    check_seed(seed)
    check_int("num_steps", num_steps, lo=1, hi=sd.scheduler.config.num_train_timesteps)
    if words is not None and (isinstance(words, str) or not isinstance(words, (list, tuple)) or not words
                              or not all(isinstance(w, str) for w in words)):
        raise SDLibError(f"words must be None or a non-empty list of strings, got {words!r:.60}.")
    for w in words or ():
        word_id(sd.tokenizer, w)
    cache = {}

    def show(weight):
        images = render(sd, prompt, word, other, weight, seed, num_steps, cache)
        middle = f"{1 - weight:.1f} {word} + {weight:.1f} {other}"
        if words:
            a, b = word_vector(sd, word), word_vector(sd, other)  # (D,)
            near = nearest_words(sd, (1 - weight) * a + weight * b, k=1, words=words)[0][0]
            middle += f"\nnearest word: {near}"
        fig = show_images(images, [f"{word} (0)", middle, f"{other} (1)"], cell=1.6,
                          title=repr(prompt))
        plt.show()
        plt.close(fig)
        return images

    return W.interactive(show, weight=W.FloatSlider(
        value=0.5, min=WEIGHTS[0], max=WEIGHTS[1], step=0.1, description="weight", continuous_update=False,
        readout_format=".1f"))
