"""An explorer for ControlNet: the control map's shape, place and size, and the conditioning scale.

Why: "the map decides where, the prompt decides what" is easiest to believe by dragging the map
and watching the object follow it, then turning the scale down to 0 and watching it go. Every move
regenerates two pictures from the same seed: without control and with it, the map beside them.

    draw = functools.partial(sdlib.builtin.control_maps.shape_map, size=sd.image_size, kind=kind)
    sdlib.display.explore_control.explorer(sd, draw)   # sd = sdlib.load_controlnet(sdlib.load_sd())

`draw(shape, (x, y), size)` makes the map: one shape centred at (x, y) with bbox side `size`
(fractions of the picture), as a control image (1, 3, H, W) in [0, 1] of the kind the model's
ControlNet reads (`conditioning.control.default_controlnet`). Taught in notebooks/09.
"""
from ..checks import check_callable, check_choice, check_int, check_number, check_seed
from ..errors import SDLibError
from ..models.load import check_sd
from ..sampling.sampler import generate

SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond")
SCALES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)


def _check_place(shape, x, y, size):
    check_choice("shape", shape, SHAPES)
    size = check_number("size", size, lo=0.1, hi=0.6)
    for name, v in (("x", x), ("y", y)):
        check_number(name, v, lo=size / 2, hi=1 - size / 2)


def render(sd, draw, prompt, shape="square", x=0.5, y=0.5, size=0.35, scale=1.0, seed=0, num_steps=10):
    """(the map `draw` makes, the picture without control, the picture with it at `scale`), from
    one seed. Used by explorer; taught in notebooks/09, section 6."""
    _check(sd, draw)
    _check_place(shape, x, y, size)
    check_number("scale", scale, lo=0)
    image = draw(shape, (x, y), size)
    kw = dict(seed=seed, num_steps=num_steps)
    return image, generate(sd, prompt, **kw), generate(sd, prompt, control_image=image, conditioning_scale=scale, **kw)


def _check(sd, draw):
    check_sd(sd)
    if sd.controlnet is None:
        raise SDLibError("the explorer needs a ControlNet beside the model: sd = sdlib.load_controlnet(sd).")
    check_callable("draw", draw, "(shape, (x, y), size) -> a control image (1, 3, H, W) in [0, 1]")


def explorer(sd, draw, prompt="a red circle", seed=0, num_steps=10):
    """An ipywidgets panel: the prompt, the map's shape, centre (x, y) and size, the scale; `draw`
    makes the map (see the module's doc). Taught in notebooks/09, section 6."""
    import ipywidgets as W

    _check(sd, draw)  # the widget hides errors raised on a move: check everything first
    if not isinstance(prompt, str):
        raise SDLibError(f"prompt must be a string (the text box's start), got {prompt!r:.60}.")
    check_seed(seed)
    check_int("num_steps", num_steps, lo=1, hi=sd.scheduler.config.num_train_timesteps)

    from .plot import show_images

    def show(prompt, shape, x, y, size, scale):
        size = min(size, 2 * x, 2 * y, 2 * (1 - x), 2 * (1 - y))  # the shape stays inside the picture
        image, plain, steered = render(sd, draw, prompt, shape, x, y, size, scale, seed, num_steps)
        show_images([image[0], plain, steered], ["the control map", "no control", f"ControlNet, scale {scale:g}"],
                    cell=2.5, title=repr(prompt))
        return image, plain, steered

    slider = dict(continuous_update=False, style={"description_width": "initial"})
    return W.interactive(
        show,
        prompt=W.Text(prompt, description="prompt", continuous_update=False),
        shape=W.Dropdown(options=SHAPES, value="square", description="map's shape"),
        x=W.FloatSlider(0.5, min=0.15, max=0.85, step=0.05, description="x (left to right)", **slider),
        y=W.FloatSlider(0.5, min=0.15, max=0.85, step=0.05, description="y (top to bottom)", **slider),
        size=W.FloatSlider(0.35, min=0.2, max=0.5, step=0.05, description="size", **slider),
        scale=W.SelectionSlider(options=SCALES, value=1.0, description="conditioning scale", **slider),
    )
