"""The course's concepts: `<purple-triangle>` (notebook 03) and a colour the model never saw (07).

Purple triangles are a colour+shape pair the built-in model never saw in training
(`scenes.HELD_OUT`), so a learned word for them is a fair test of textual inversion (taught in
notebooks/03_text_embeddings). The learning itself is `sdlib.embeddings.learn_embedding`; this
module only makes the pictures, fingerprints the model, and keeps the shipped file current:

    python -m sdlib.builtin.concept       # regenerate sdlib/data/purple_triangle_embedding.safetensors

Notebook 07 teaches the model something plain words cannot ask for: pink (`NEW_COLOUR`), a colour
outside the dataset's palette (`scenes.COLOURS`), so "a pink circle" draws red, orange, yellow or
green circles (0 of 16 pink, measured). `new_colour_images` draws the examples; `COLOURS_AND_NEW`
is the palette the judge names colours from once pink is a candidate. On real SD the notebook
learns a cat photo instead (`photo_concept_images`), as real SD can already draw pink.
"""
import dataclasses
import hashlib
import json
from pathlib import Path

from ..embeddings import default_lr, learn_embedding, load_embedding, save_embedding
from . import scenes
from .model import cache_dir

PROJECT_FILE = Path(__file__).resolve().parent.parent / "data" / "purple_triangle_embedding.safetensors"
CONCEPT = dict(token="<purple-triangle>", init_word="triangle", colour="purple", shape="triangle")


def concept_images(size=64, n=8):
    """The project's concept: purple triangles (a colour+shape pair the built-in model is never
    trained on), in several sizes, places and backgrounds; captions with "{}" for the token."""
    places = ["left", "right", "top", "bottom", "middle", "top left", "bottom right", "top right"]
    backgrounds = ["white", "yellow", "white", "black"]
    images, captions = [], []
    for i in range(n):  # sizes, places and backgrounds cycle
        size_name, place, bg = list(scenes.SIZES)[i % 3], places[i % 8], backgrounds[i % 4]
        scene = scenes.make_scene(CONCEPT["colour"], CONCEPT["shape"], size_name, place, bg)
        images.append(scenes.render(scene, size))
        where = scenes.POSITION_WORDS[place][0]
        captions.append(f"a {size_name} {{}} {where} on a {bg} background")
    return images, captions


NEW_COLOUR = dict(name="pink", rgb=(240, 110, 190), shape="circle")  # outside scenes.COLOURS:
# at least 100 from every palette colour in RGB (purple 119, white 153, orange 171), so the judge
# never confuses it with one, and a colour the text space can reach between red, purple and white
COLOURS_AND_NEW = dict(scenes.COLOURS, **{NEW_COLOUR["name"]: NEW_COLOUR["rgb"]})
_PLACES = ("left", "right", "top", "bottom", "middle", "top left", "bottom right", "top right",
           "bottom left", "middle", "left", "right")
_BACKGROUNDS = ("white", "grey", "white", "black")  # each at least 100 from pink (scenes.MIN_CONTRAST)


def new_colour_images(size=128, n=12):
    """n pictures of the new colour (`NEW_COLOUR`: pink circles) in the three sizes, twelve places
    and four backgrounds, cycling; and a caption template for each with "{}" where the colour word
    goes ("a small {} circle on the left on a white background"). Taught in notebooks/07."""
    images, captions = [], []
    for i in range(n):
        size_name, place = list(scenes.SIZES)[i % 3], _PLACES[i % len(_PLACES)]
        bg = _BACKGROUNDS[i % len(_BACKGROUNDS)]
        scene = scenes.make_scene("red", NEW_COLOUR["shape"], size_name, place, bg)  # then repainted
        pink = dataclasses.replace(scene.main, colour=NEW_COLOUR["name"], rgb=NEW_COLOUR["rgb"])
        images.append(scenes.render(dataclasses.replace(scene, objects=(pink,)), size))
        where = scenes.POSITION_WORDS[place][0]
        captions.append(f"{scenes.with_article(size_name)} {{}} {NEW_COLOUR['shape']} {where} "
                        f"on a {bg} background")
    return images, captions


def photo_concept_images(size=512, n=8, seed=0):
    """n square crops (60-100 % of the short side, half of them mirrored) of scikit-image's cat
    photo `chelsea`, resized to size: the concept notebook 07 teaches real Stable Diffusion, with
    the caption template "a photo of {}" for each. Nothing is downloaded."""
    import numpy as np
    from PIL import Image
    from skimage import data

    photo = data.chelsea()  # uint8 (300, 451, 3), ships with scikit-image
    rng = np.random.default_rng(seed)
    h, w = photo.shape[:2]
    images = []
    for i in range(n):
        side = int(min(h, w) * rng.uniform(0.6, 1.0))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size), Image.LANCZOS)
        images.append(crop.transpose(Image.FLIP_LEFT_RIGHT) if i % 2 else crop)
    return images, ["a photo of {}"] * n


def model_fingerprint(sd):
    """A short hash of a few weights: a learned embedding only fits the model it was learned on."""
    h = hashlib.sha1(sd.name.encode())
    for w in (sd.unet.conv_in.weight, sd.text_encoder.get_input_embeddings().weight[:4096]):
        h.update(w.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:12]


def make_project_embedding(sd, path=PROJECT_FILE, steps=40, lr=None, seed=0):
    """Learn the project's `<purple-triangle>` embedding on `sd` and save it (deterministic on one machine)."""
    lr = lr or default_lr(sd)
    images, captions = concept_images(sd.image_size)
    batch = 4 if sd.image_size <= 128 else 1  # backward through a 512 px UNet is memory-hungry
    vector, losses = learn_embedding(sd, images, captions, CONCEPT["init_word"], steps, lr,
                                     batch, seed)
    return save_embedding(path, CONCEPT["token"], vector, init_word=CONCEPT["init_word"],
                          steps=steps, lr=lr, seed=seed, batch_size=batch, model=sd.name,
                          fingerprint=model_fingerprint(sd),
                          losses=json.dumps([round(v, 5) for v in losses]))


def project_embedding(sd):
    """Path of the project's embedding for this model: the shipped file if it was learned on
    this very model, else one learned now (under a minute on a GPU) and cached by the model."""
    fp = model_fingerprint(sd)
    if PROJECT_FILE.is_file() and load_embedding(PROJECT_FILE)[2].get("fingerprint") == fp:
        return PROJECT_FILE
    path = cache_dir().parent / "embeddings" / f"purple_triangle_{fp}.safetensors"
    return path if path.is_file() else make_project_embedding(sd, path)


def main():
    """Regenerate the shipped file; run it whenever the built-in model changes."""
    from ..load import load_sd

    print(make_project_embedding(load_sd("builtin", device="cpu")))


if __name__ == "__main__":
    main()
