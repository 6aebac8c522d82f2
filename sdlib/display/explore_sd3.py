"""An explorer for SD3's joint attention: pick a word of the prompt, see which image patches looked
at it while the picture was drawn (averaged over the transformer's blocks and the steps).

Why: in SD3 there is no cross-attention layer to read, as notebooks/04 read the UNet's; image and
text tokens share one softmax. Its image-to-text part still says where each word landed, and a
word that steers nothing (the padding, the zero T5 tokens) shows it too.

    sdlib.display.explore_sd3.explorer(sd)   # sd = sdlib.load_sd("builtin-sd3")

Taught in notebooks/11, section 9.
"""
from ..checks import check_int, check_number, check_seed
from ..errors import SDLibError
from ..models.load import check_sd
from ..models.mmdit import capture_joint_attention, token_maps
from ..models.text import tokenize
from ..sampling.sampler import generate

_DRAWN = {}  # (id of the bundle, prompt, seed, steps) -> (picture, maps): a word change reuses them


def _check_sd3(sd):
    check_sd(sd)
    if sd.transformer is None:
        raise SDLibError(f"sd must be an SD3 model (a transformer denoiser), e.g. sdlib.load_sd('builtin-sd3'), "
                         f"got {sd.name!r} with a UNet.")
    return sd


def render(sd, prompt, num_steps=28, seed=0, guidance_scale=7.0):
    """(picture (1, 3, H, W), maps (S, h, w), words): the picture of `prompt` (StableDiffusion3Pipeline's
    defaults: 28 steps, guidance 7.0), where its patches looked per text token (`mmdit.token_maps`,
    the prompt's half of guidance), and the prompt's tokens as the tokenizer wrote them (BOS first,
    EOS last). Used by explorer; taught in notebooks/11, section 9."""
    _check_sd3(sd)
    if not isinstance(prompt, str):
        raise SDLibError(f"prompt must be a string, got {prompt!r:.60}.")
    check_int("num_steps", num_steps, lo=1, hi=1000)
    check_seed(seed)
    check_number("guidance_scale", guidance_scale, lo=0)
    key = (id(sd), prompt, seed, num_steps, guidance_scale)
    if key not in _DRAWN:
        with capture_joint_attention(sd.transformer) as store:
            picture = generate(sd, prompt, num_steps=num_steps, guidance_scale=guidance_scale, seed=seed,
                               output="tensor")
        side = sd.transformer.config.sample_size // sd.transformer.config.patch_size
        _DRAWN.clear()  # one picture kept: the maps of 333 tokens are large on a real SD3
        _DRAWN[key] = (picture, token_maps(store, side))
    picture, maps = _DRAWN[key]
    return picture, maps, tokenize(sd.tokenizer, prompt, warn=False).tokens


def explorer(sd, prompt="a red circle on the left", num_steps=28, seed=0, guidance_scale=7.0):
    """An ipywidgets panel: a slider over the prompt's tokens and a text box for the prompt; shows
    the picture and the chosen token's map, and the share of the image-to-text attention that token
    got. Taught in notebooks/11, section 9."""
    import ipywidgets as W

    _check_sd3(sd)  # the widget hides errors raised on a move: check everything first
    picture, _, words = render(sd, prompt, num_steps, seed, guidance_scale)

    from .plot import show_images

    def show(prompt, word):
        picture, maps, words = render(sd, prompt, num_steps, seed, guidance_scale)
        k = min(word, len(words) - 1)
        share = float(maps[k].sum() / maps.sum())
        m = maps[k] / maps[k].max().clamp_min(1e-12)  # (h, w) in [0, 1]
        show_images([picture, m], [f"{prompt!r}", f"token {k}: {words[k]!r}, {share:.0%} of the text attention"],
                    cell=2.6, cmap="magma")
        return {"token": words[k], "share": share, "map": m}

    word_slider = W.IntSlider(value=min(3, len(words) - 1), min=0, max=76, description="token",
                              continuous_update=False)
    return W.interactive(show, prompt=W.Text(prompt, description="prompt", continuous_update=False),
                         word=word_slider)
