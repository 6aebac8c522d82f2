"""An explorer for guidance: guidance scale, negative prompt and a loss with its scale, as controls.

Why: the effect of each knob is easiest to feel by moving it and seeing the picture change at once.
With few steps (10) on the built-in model (128 px), one picture takes well under a second on a laptop CPU, so every move
regenerates: the left panel with text guidance only, the right one with the loss added, both from
the same seed, and the blue fraction of each in the titles.

    sdlib.explore_guidance.explorer(sd)      # in a notebook cell

Taught in notebooks/05.
"""
from ..checks import check_int, check_number, check_seed
from ..errors import SDLibError
from ..sampling.guidance import blue_fraction, blue_loss, brightness_loss, dark_left_loss
from ..images import to_tensor
from ..models.load import check_sd
from ..sampling.sampler import generate

LOSSES = {
    "blue": blue_loss,
    "dark left half": dark_left_loss,
    "bright (0.9)": lambda images: brightness_loss(images, 0.9),
}
LOSS_SCALES = (0, 1, 3, 10, 30, 100, 300, 1000)  # log-spaced slider stops


def render(sd, prompt, negative_prompt="", guidance_scale=7.5, loss="blue", loss_scale=0.0,
           seed=0, num_steps=10, loss_every=2):
    """Two images from the same seed: (guidance only, guidance + the named loss at loss_scale).

    The other arguments are `generate`'s, which checks them.
    Used by explorer; taught in notebooks/05, section 6."""
    check_sd(sd)
    if not isinstance(loss, str) or loss not in LOSSES:
        raise SDLibError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}.")
    check_number("loss_scale", loss_scale, lo=0)
    check_int("loss_every", loss_every, lo=1)
    kw = dict(negative_prompt=negative_prompt, guidance_scale=guidance_scale, seed=seed,
              num_steps=num_steps)
    plain = generate(sd, prompt, **kw)
    if not loss_scale:
        return plain, plain
    return plain, generate(sd, prompt, loss_fn=LOSSES[loss], loss_scale=loss_scale,
                           loss_every=loss_every, **kw)


def explorer(sd, prompt="a large red circle on the left", negative_prompt="", seed=0,
             num_steps=10):
    """An ipywidgets panel: prompt, negative prompt, guidance scale, loss and loss scale.
    Taught in notebooks/05, section 6."""
    import ipywidgets as W

    check_sd(sd)  # the widget hides errors raised on a move: check everything first
    for name, value in (("prompt", prompt), ("negative_prompt", negative_prompt)):
        if not isinstance(value, str):
            raise SDLibError(f"{name} must be a string (the text box's start), got {value!r:.60}.")
    check_seed(seed)
    check_int("num_steps", num_steps, lo=1, hi=sd.scheduler.config.num_train_timesteps)

    from .plot import show_images

    def show(prompt, negative_prompt, guidance_scale, loss, loss_scale):
        plain, guided = render(sd, prompt, negative_prompt, guidance_scale, loss, loss_scale,
                               seed, num_steps)
        fractions = blue_fraction(to_tensor([plain, guided])).tolist()
        show_images([plain, guided],
                    [f"guidance {guidance_scale:g}\nblue {fractions[0]:.2f}",
                     f"+ {loss} x {loss_scale:g}\nblue {fractions[1]:.2f}"],
                    cell=2.5, title=f"{prompt!r}  (negative: {negative_prompt!r})")
        return plain, guided

    slider = dict(continuous_update=False, style={"description_width": "initial"})
    return W.interactive(
        show,
        prompt=W.Text(prompt, description="prompt", continuous_update=False),
        negative_prompt=W.Text(negative_prompt, description="negative prompt", **slider),
        guidance_scale=W.FloatSlider(7.5, min=0, max=15, step=0.5, description="guidance scale",
                                     **slider),
        loss=W.Dropdown(options=list(LOSSES), value="blue", description="loss"),
        # Log-spaced: the built-in model reacts from about 10, SD v1 at 512 px needs hundreds.
        loss_scale=W.SelectionSlider(options=LOSS_SCALES, value=0, description="loss scale",
                                     **slider),
    )
