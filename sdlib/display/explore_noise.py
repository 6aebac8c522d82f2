"""Pictures of the noise schedule, and an img2img explorer with a strength slider and a sigma scrubber.

Why: "strength 0.6" only makes sense once you see which noise level it starts from and how many
of the sampler's steps it skips. `plot_schedule` draws the training schedule with a sampler's
steps on it; `plot_sampler_sigmas` compares samplers; `strength_view` draws one img2img run with
its starting point and any step's noised latent (the tests call it); `strength_explorer` puts
sliders on it. Taught in notebooks/02.
"""
import copy

import matplotlib.pyplot as plt
import numpy as np
import torch

from . import plot
from ..checks import check_int, check_number, check_seed
from ..errors import SDLibError
from ..images import load_image
from ..models.vae import decode, encode
from ..models.load import check_sd
from ..processes import is_vp
from ..processes.vp import add_noise_vp, alpha_bar_from_sigma, alpha_bars, sigmas_from_alpha_bars, unit_scale
from ..sampling.schedulers import first_index, img2img_skip, sampler_schedule


def plot_schedule(scheduler, num_steps=None, title=None):
    """Three panels over the training timesteps: beta_t; sqrt(alpha_bar) (how much image is left)
    and sqrt(1 - alpha_bar) (how much noise); sigma on a log axis, with the timesteps a sampler
    visits for `num_steps` marked on it (training uses all of them, sampling only a few).
    Taught in notebooks/02, section 1."""
    _check_scheduler("scheduler", scheduler)
    _check_title(title)
    if num_steps is not None:
        check_int("num_steps", num_steps, lo=1, hi=scheduler.config.num_train_timesteps)
    alpha_bar = alpha_bars(scheduler).float()  # (T,)
    t = np.arange(len(alpha_bar))
    fig, axes = plt.subplots(1, 3, figsize=(plot.MAX_WIDTH, 2.8), dpi=plot.DPI)
    axes[0].plot(t, scheduler.betas.float().numpy())
    axes[0].set_title("beta_t: noise added at each step", fontsize=9)
    axes[1].plot(t, alpha_bar.sqrt().numpy(), label="sqrt(alpha_bar): image")
    axes[1].plot(t, (1 - alpha_bar).sqrt().numpy(), label="sqrt(1 - alpha_bar): noise")
    axes[1].legend(fontsize=7)
    axes[1].set_title("what is left of x0, and of the noise", fontsize=9)
    sigma = sigmas_from_alpha_bars(alpha_bar)
    axes[2].plot(t, sigma.numpy(), label="training: all timesteps")
    if num_steps is not None:
        ts, sig = sampler_schedule(scheduler, num_steps)
        axes[2].plot(ts.float().numpy(), sig.numpy(), "o", ms=4,
                     label=f"{type(scheduler).__name__}, {num_steps} steps")
        axes[2].legend(fontsize=7)
    axes[2].set_yscale("log")
    axes[2].set_title("sigma = sqrt((1 - alpha_bar) / alpha_bar)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("timestep t", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_sampler_sigmas(schedulers, num_steps, title=None):
    """sigma of every UNet call, step by step, for several samplers ({name: scheduler}).
    Taught in notebooks/02, section 2."""
    if not isinstance(schedulers, dict) or not schedulers:
        got = "an empty dict" if isinstance(schedulers, dict) else type(schedulers).__name__
        raise SDLibError(f"schedulers must be a non-empty dict {{name: scheduler}}, got {got}.")
    for name, sch in schedulers.items():
        _check_scheduler(f"schedulers[{name!r}]", sch)
    _check_title(title)
    curves = {name: sampler_schedule(sch, num_steps)[1].numpy() for name, sch in schedulers.items()}
    fig, ax = plt.subplots(figsize=(6.0, 3.0), dpi=plot.DPI)
    for name, sig in curves.items():
        ax.plot(np.arange(len(sig)), sig, "o-", ms=3, label=f"{name} ({len(sig)} calls)")
    ax.set_yscale("log")
    ax.set_xlabel("UNet call")
    ax.set_ylabel("sigma")
    ax.legend(fontsize=7)
    ax.set_title(title or f"Noise level of each UNet call, {num_steps} steps", fontsize=10)
    fig.tight_layout()
    return fig


def strength_view(sd, image, prompt, strength, step, num_steps=25, scheduler=None, seed=0,
                  guidance_scale=7.5, run=True, cache=None):
    """One img2img run at `strength`, and the image noised to the sigma of sampler step `step`.

    Returns (figure, info); info has t_start (steps skipped), n_run, t and sigma of the first
    step run, step_t and step_sigma of the scrubbed step, and the result image (or None).
    Used by strength_explorer; taught in notebooks/02, section 10.
    """
    from ..sampling.sampler import generate

    scheduler = _check_img2img(sd, prompt, num_steps, scheduler, seed, guidance_scale)
    timesteps, sigmas = sampler_schedule(scheduler, num_steps)  # (N',), (N',)
    check_int("step", step, lo=0, hi=len(timesteps) - 1)  # one per sampler step
    check_number("strength", strength, lo=0, hi=1, lo_open=True)
    if not isinstance(run, bool):
        raise SDLibError(f"run must be True or False, got {run!r}.")
    if cache is not None and not isinstance(cache, dict):
        raise SDLibError(f"cache must be None or a dict, got {type(cache).__name__}.")
    pic = load_image(image, size=sd.image_size)
    x0 = encode(sd, pic)  # (1, 4, h, w)
    noise = torch.randn(x0.shape, generator=torch.Generator("cpu").manual_seed(seed)).to(x0)
    sigma_step = float(sigmas[step])
    x_step = add_noise_vp(x0, noise, alpha_bar_from_sigma(sigma_step))  # (1, 4, h, w)
    t_start, n_run = img2img_skip(num_steps, strength)
    first = first_index(scheduler, t_start)
    info = dict(t_start=t_start, n_run=n_run, step_t=float(timesteps[step]), step_sigma=sigma_step,
                t=float(timesteps[first]) if n_run else None, sigma=float(sigmas[first]) if n_run else 0.0,
                result=None)
    start = {}
    if run and n_run:
        if cache is not None and round(strength, 6) in cache:
            info["result"], start["x"] = cache[round(strength, 6)]
        else:
            keep = (lambda step, t, sigma, x_t, eps, x0_pred:  # the latents img2img starts from
                    start.setdefault("x", unit_scale(scheduler, x_t, sigma)))
            info["result"] = generate(sd, prompt, num_steps=num_steps, guidance_scale=guidance_scale,
                                      seed=seed, scheduler=scheduler, init_image=pic,
                                      strength=strength, callback=keep)
            if cache is not None:
                cache[round(strength, 6)] = info["result"], start["x"]
    decoded = decode(sd, torch.cat([x_step] + ([start["x"]] if start else [])))  # (1 or 2, 3, H, W)
    panels = [("init image", pic)]
    if start:
        panels += [(f"start: step {t_start}, sigma {info['sigma']:.2f}", decoded[1]),
                   (f"result ({n_run} steps run)", info["result"])]
    panels += [(f"step {step}: t {info['step_t']:.0f}, sigma {sigma_step:.2f}", decoded[0])]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=((len(panels) + 1.6) * plot.CELL, plot.CELL + 0.4),
                             dpi=plot.DPI, gridspec_kw=dict(width_ratios=[1] * len(panels) + [1.6]))
    for ax, (name, img) in zip(axes, panels):
        plot.draw_image(ax, img, name)
    ax = axes[-1]
    ax.plot(np.arange(len(sigmas)), sigmas.numpy(), "o-", ms=3, color="grey")
    if n_run:
        ax.axvspan(-0.5, first - 0.5, color="grey", alpha=0.2, label=f"skipped ({t_start} steps)")
        ax.plot([first], [info["sigma"]], "o", ms=7, label="img2img starts")
    ax.plot([step], [sigma_step], "x", ms=9, mew=2, color="red", label="scrubber")
    ax.set_yscale("log")
    ax.set_xlabel("step", fontsize=8)
    ax.set_title(f"strength {strength:.2f}", fontsize=8)
    ax.legend(fontsize=6)
    fig.tight_layout()
    return fig, info


def strength_explorer(sd, image, prompt, num_steps=25, scheduler=None, seed=0, guidance_scale=7.5):
    """A widget: a strength slider (where img2img starts, and its result) and a sigma scrubber
    (the image noised to any step's sigma, decoded). Each strength is generated once, then cached.
    Taught in notebooks/02, section 10."""
    import ipywidgets as W
    from IPython.display import display

    scheduler = _check_img2img(sd, prompt, num_steps, scheduler, seed, guidance_scale)
    image = load_image(image, size=sd.image_size)  # checked (and resized) once, not on every move
    n_calls = len(sampler_schedule(scheduler, num_steps)[0])
    cache = {}

    def update(strength, step):
        fig, _ = strength_view(sd, image, prompt, strength, step, num_steps, scheduler, seed,
                               guidance_scale, cache=cache)
        display(fig)
        plt.close(fig)

    return W.interactive(
        update,
        strength=W.FloatSlider(value=0.6, min=0.05, max=1.0, step=0.05, continuous_update=False,
                               description="strength"),
        step=W.IntSlider(value=n_calls // 2, min=0, max=n_calls - 1, continuous_update=False,
                         description="sigma step"))


# ---------------------------------------------------------------- argument checks
def _check_scheduler(name, scheduler):
    """A diffusers scheduler (with its training schedule), else SDLibError naming `name`."""
    if not (all(hasattr(scheduler, a) for a in ("set_timesteps", "step", "config")) and is_vp(scheduler)):
        raise SDLibError(f"{name} must be a diffusers scheduler, e.g. sd.scheduler or "
                         f"sdlib.make_scheduler('euler', sd.scheduler), got {type(scheduler).__name__}.")
    return scheduler


def _check_title(title):
    if title is not None and not isinstance(title, str):
        raise SDLibError(f"title must be a string or None, got {type(title).__name__}.")


def _check_img2img(sd, prompt, num_steps, scheduler, seed, guidance_scale):
    """The arguments strength_view and strength_explorer share; returns a copy of the scheduler."""
    check_sd(sd)
    if not isinstance(prompt, str):
        raise SDLibError(f"prompt must be a string, got {prompt!r:.60}.")
    scheduler = copy.deepcopy(_check_scheduler("scheduler", scheduler or sd.scheduler))
    check_int("num_steps", num_steps, lo=1, hi=scheduler.config.num_train_timesteps)
    check_seed(seed)
    check_number("guidance_scale", guidance_scale)
    return scheduler
