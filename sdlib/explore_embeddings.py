"""An explorer for word mixing: one slider blends one word's token vector into another's.

Why: "between red and blue" is not a word, but it is a vector, and the model will draw it. Moving
the weight from 0 (the prompt as written) to 1 (the other word) shows where along the way the
picture changes, and past 1 or below 0 what the model makes of vectors no word has. The two
endpoints are drawn beside the mix, from the same seed, so only the words differ.

    sdlib.explore_embeddings.explorer(sd, "a large red circle", "red", "blue")   # in a notebook
"""
from .embeddings import generate_from_embeddings, mix_words, nearest_words, word_id, word_vector


def render(sd, prompt, word, other, weight, seed=0, num_steps=15, cache=None):
    """Three images from one seed: (the prompt, `word` mixed with `other` at `weight`, `other`).

    cache: a dict reused between calls, so that moving the slider only draws the middle image.
    """
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
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt

    from .plot import show_images

    word_id(sd.tokenizer, word), word_id(sd.tokenizer, other)  # one clear error, before the widget
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
        value=0.5, min=-0.5, max=1.5, step=0.1, description="weight", continuous_update=False,
        readout_format=".1f"))
