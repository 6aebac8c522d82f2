"""The course's concepts: `<purple-triangle>` (notebook 03) and a colour the model never saw (07).

Purple triangles are a colour+shape pair the built-in model never saw in training
(`scenes.HELD_OUT`), so a learned word for them is a fair test of textual inversion (taught in
notebooks/03_text_embeddings). The learning itself is `sdlib.embeddings.learn_embedding`; this
module only makes the pictures, fingerprints the model, and keeps the shipped file current:

    python -m sdlib.builtin.concept       # regenerate sdlib/data/purple_triangle_embedding.safetensors

Notebook 07 teaches the model something plain words cannot ask for: cyan (`NEW_COLOUR`), a colour
outside the dataset's palette (`scenes.COLOURS`) and far from every colour the dataset draws, so
"a cyan circle" and "a circle" draw no cyan (the notebook measures this baseline before training).
`new_colour_images` draws the examples; `COLOURS_AND_NEW` is the palette the judge names colours
from once cyan is a candidate; `measure` judges what a fine-tune did (success and language drift)
and `same_verdicts` the drift alone. On real SD the notebook learns a cat photo instead
(`photo_concept_images`), as real SD can already draw cyan.
"""
import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from ..checks import check_int
from ..conditioning.embeddings import load_embedding, save_embedding
from ..training.textual_inversion import default_lr, learn_embedding
from ..errors import SDLibError
from ..models.load import check_sd
from ..measure.metrics import psnr
from ..sampling.sampler import generate
from . import checker, scenes
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


NEW_COLOUR = dict(name="cyan", rgb=(0, 225, 225), shape="circle")  # outside scenes.COLOURS, and
# far from everything the dataset draws: at least 140 in RGB from every palette colour (blue 155,
# green 185) and from every background tone, pale textures included (147), so the judge
# never names a drawn colour cyan by mistake (pink, the first choice, is not: the model's pale
# purple and red blends were judged pink in a quarter of the samples of "a circle")
COLOURS_AND_NEW = dict(scenes.COLOURS, **{NEW_COLOUR["name"]: NEW_COLOUR["rgb"]})
_PLACES = ("left", "right", "top", "bottom", "middle", "top left", "bottom right", "top right",
           "bottom left", "middle", "left", "right")
_BACKGROUNDS = ("white",)  # the built-in VAE never saw cyan: it keeps it on white, and turns a
# cyan circle on grey, black or a colour blue after the round trip (measured in notebooks/07)


def new_colour_images(size=128, n=12):
    """n pictures of the new colour (`NEW_COLOUR`: cyan circles) in the three sizes, twelve places
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


def _check_pictures(name, pictures):
    if not isinstance(pictures, (list, tuple)) or not pictures:
        raise SDLibError(f"{name} must be a non-empty list of images, got {type(pictures).__name__}.")
    return list(pictures)


def same_verdicts(before, after, colours=None):
    """Language drift as the judge sees it: the share of pairs (the same seed before and after a
    fine-tune) whose largest object keeps its judged colour and shape. 1.0: every picture of the
    class prompt still shows what it showed; the pixels may have moved (PSNR says how much).
    colours: the judge's colour table (None: `COLOURS_AND_NEW`). Taught in notebooks/07."""
    before, after = _check_pictures("before", before), _check_pictures("after", after)
    if len(before) != len(after):
        raise SDLibError(f"before and after must pair up (one seed each): got {len(before)} and "
                         f"{len(after)} images.")
    colours = COLOURS_AND_NEW if colours is None else colours
    what = lambda image: (lambda v: (v["colour"], v["shape"]))(checker.judge(image, colours=colours))
    return sum(what(a) == what(b) for a, b in zip(before, after)) / len(before)


def measure(sd, prompt, class_prompt, class_before, n=8, seed=0, judge=True, **generate_kw):
    """What a fine-tune did, for notebook 07's tables: n samples of `prompt` (the learned word)
    and len(class_before) of `class_prompt`, from `seed`, with the model as it is now, and
        concept:       the share of prompt's samples whose largest object is judged NEW_COLOUR
        class_concept: the same share for the class prompt's samples
        class_kept:    `same_verdicts(class_before, class samples)`
        class_psnr:    mean PSNR (dB) of the class samples against class_before (inf: unchanged)
    The first three need the judge: judge=False (real SD) leaves them out. Also returns the
    samples ("samples", "class_samples") and the seconds the measurement took ("seconds").
    generate_kw (num_steps=...) goes to `sdlib.generate`. Taught in notebooks/07."""
    check_sd(sd)
    n = check_int("n", n, lo=1)
    class_before = _check_pictures("class_before", class_before)
    began = time.perf_counter()
    samples = generate(sd, [prompt] * n, seed=seed, **generate_kw)
    class_samples = generate(sd, [class_prompt] * len(class_before), seed=seed, **generate_kw)
    row = dict(samples=samples, class_samples=class_samples,
               class_psnr=float(torch.as_tensor(psnr(class_samples, class_before)).mean()))
    if judge:
        share = lambda pictures: checker.share_of(pictures, colour=NEW_COLOUR["name"],
                                                  colours=COLOURS_AND_NEW)
        row.update(concept=share(samples), class_concept=share(class_samples),
                   class_kept=same_verdicts(class_before, class_samples))
    row["seconds"] = time.perf_counter() - began
    return row


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
    from ..models.load import load_sd

    print(make_project_embedding(load_sd("builtin", device="cpu")))


if __name__ == "__main__":
    main()
