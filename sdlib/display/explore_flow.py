"""An explorer for few-step sampling: the eps model (DDIM) and the flow model (Euler) side by side
at the same number of steps, each beside its own many-step picture.

Why: "a straighter path needs fewer steps" is a claim about pictures; dragging the steps slider
from 25 down to 1 shows where each model's picture starts to fall apart, from the same noise, with
the PSNR against each model's own REFERENCE_STEPS picture printed above.

    sdlib.display.explore_flow.explorer(eps, flow)   # eps = load_sd("builtin"), flow = load_sd("builtin-flow")

Taught in notebooks/10, section 9.
"""
from .. import processes
from ..checks import check_int, check_seed
from ..errors import SDLibError
from ..measure import metrics
from ..models.load import check_sd
from ..sampling.sampler import generate

STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 25)
REFERENCE_STEPS = 100


def _check_pair(eps, flow):
    check_sd(eps)
    check_sd(flow)
    if processes.kind(eps.scheduler) != "vp" or processes.kind(flow.scheduler) != "flow":
        raise SDLibError(f"eps must be a VP (eps) model and flow a flow-matching model, e.g. load_sd('builtin') and "
                         f"load_sd('builtin-flow'), got {eps.name!r} ({processes.kind(eps.scheduler)}) and "
                         f"{flow.name!r} ({processes.kind(flow.scheduler)}).")


_REFERENCES = {}  # (id of the bundle, prompt, seed) -> its REFERENCE_STEPS picture: a slider move reuses it


def _reference(sd, prompt, seed):
    key = (id(sd), prompt, seed)
    if key not in _REFERENCES:
        _REFERENCES[key] = generate(sd, prompt, num_steps=REFERENCE_STEPS, seed=seed, output="tensor")
    return _REFERENCES[key]


def render(eps, flow, prompt, num_steps=4, seed=0):
    """{"eps": (picture, PSNR dB vs its REFERENCE_STEPS picture), "flow": (...)} at `num_steps`, one
    seed for all four pictures. Used by explorer; taught in notebooks/10, section 9."""
    _check_pair(eps, flow)
    check_int("num_steps", num_steps, lo=1, hi=REFERENCE_STEPS)
    check_seed(seed)
    if not isinstance(prompt, str):
        raise SDLibError(f"prompt must be a string, got {prompt!r:.60}.")
    out = {}
    for name, sd in (("eps", eps), ("flow", flow)):
        x = generate(sd, prompt, num_steps=num_steps, seed=seed, output="tensor")
        out[name] = (x, float(metrics.psnr(x, _reference(sd, prompt, seed))))
    return out


def explorer(eps, flow, prompt="a purple triangle", seed=0):
    """An ipywidgets panel: the prompt, the number of steps (STEPS), the seed; shows the eps model
    (its DDIM) and the flow model (Euler) at those steps. Taught in notebooks/10, section 9."""
    import ipywidgets as W

    _check_pair(eps, flow)  # the widget hides errors raised on a move: check everything first
    if not isinstance(prompt, str):
        raise SDLibError(f"prompt must be a string (the text box's start), got {prompt!r:.60}.")
    check_seed(seed)

    from .plot import show_images

    def show(prompt, num_steps, seed):
        out = render(eps, flow, prompt, num_steps, seed)
        show_images([out["eps"][0], out["flow"][0]],
                    [f"eps, DDIM: {out['eps'][1]:.1f} dB", f"flow, Euler: {out['flow'][1]:.1f} dB"], cell=2.6,
                    title=f"{num_steps} step{'s' * (num_steps > 1)}; PSNR vs its own {REFERENCE_STEPS}-step picture")
        return out

    slider = dict(continuous_update=False, style={"description_width": "initial"})
    return W.interactive(
        show,
        prompt=W.Text(prompt, description="prompt", continuous_update=False),
        num_steps=W.SelectionSlider(options=STEPS, value=8, description="steps", **slider),
        seed=W.IntSlider(seed, min=0, max=20, description="seed", **slider),
    )
