"""Schedule plots and the img2img strength explorer, checked against the sampler itself."""
import matplotlib.pyplot as plt
import pytest
import torch

import sdlib
from sdlib import explore_noise, schedule
from sdlib.builtin import scenes


@pytest.fixture(scope="module")
def scene():
    return scenes.render(scenes.make_scene("red", "circle", "large", "left", "white"), size=64)


def test_plot_schedule_marks_the_sampler_steps(sd):
    fig = explore_noise.plot_schedule(sd.scheduler, num_steps=10)
    assert len(fig.axes) == 3
    training, marks = fig.axes[2].lines
    assert len(training.get_xdata()) == sd.scheduler.config.num_train_timesteps
    ts, sig = schedule.sampler_schedule(sd.scheduler, 10)
    assert list(marks.get_xdata()) == ts.float().tolist()
    assert torch.allclose(torch.tensor(marks.get_ydata()), sig)
    plt.close(fig)


def test_plot_sampler_sigmas_one_line_per_sampler(sd):
    schs = {n: sdlib.make_scheduler(n, sd.scheduler) for n in ("pndm", "euler")}
    fig = explore_noise.plot_sampler_sigmas(schs, 10)
    lengths = [len(line.get_xdata()) for line in fig.axes[0].lines]
    assert lengths == [11, 10]  # PNDM repeats its first timestep to warm up
    plt.close(fig)


def test_strength_view_is_generate_with_init_image(sd, scene):
    euler = sdlib.make_scheduler("euler", sd.scheduler)
    fig, info = explore_noise.strength_view(sd, scene, "a blue square", 0.6, step=2, num_steps=5,
                                            scheduler=euler, seed=3)
    plt.close(fig)
    assert (info["t_start"], info["n_run"]) == schedule.img2img_skip(5, 0.6) == (2, 3)
    t_start, t, sigma = schedule.img2img_first_step(euler, 5, 0.6)
    assert info["t"] == float(t) and info["sigma"] == pytest.approx(sigma)
    assert info["step_sigma"] == pytest.approx(float(schedule.sampler_schedule(euler, 5)[1][2]))
    ref = sdlib.generate(sd, "a blue square", num_steps=5, seed=3, scheduler=euler, init_image=scene,
                         strength=0.6)
    assert sdlib.max_pixel_diff(info["result"], ref) == 0


def test_strength_view_cache_and_errors(sd, scene, monkeypatch):
    cache = {}
    fig, first = explore_noise.strength_view(sd, scene, "", 0.4, 0, num_steps=5, cache=cache)
    plt.close(fig)
    monkeypatch.setattr(sdlib.sampler, "generate", lambda *a, **k: pytest.fail("not cached"))
    fig, again = explore_noise.strength_view(sd, scene, "", 0.4, 3, num_steps=5, cache=cache)
    plt.close(fig)
    timesteps = schedule.sampler_schedule(sd.scheduler, 5)[0]
    assert again["result"] is first["result"]  # the cached run, with the scrubber moved:
    assert (first["step_t"], again["step_t"]) == (float(timesteps[0]), float(timesteps[3]))
    calls = len(timesteps)  # 5 (DDIM), 6 (PNDM repeats one)
    with pytest.raises(sdlib.SDLibError, match=rf"step must be a whole number from 0 to {calls - 1}"):
        explore_noise.strength_view(sd, scene, "", 0.4, calls, num_steps=5)
    with pytest.raises(sdlib.SDLibError, match=r"strength must be a number above 0 up to 1"):
        explore_noise.strength_view(sd, scene, "", 1.5, 0, num_steps=5)
    fig, none = explore_noise.strength_view(sd, scene, "", 0.1, 0, num_steps=5)  # int(0.5) = 0 steps
    plt.close(fig)
    assert none["n_run"] == 0 and none["result"] is None


def test_strength_explorer_builds_and_updates(sd, scene):
    import ipywidgets as W

    w = explore_noise.strength_explorer(sd, scene, "a red circle", num_steps=4)
    assert isinstance(w, W.interactive)
    controls = {c.description: c for c in w.children if hasattr(c, "description")}
    assert controls["sigma step"].max == len(schedule.sampler_schedule(sd.scheduler, 4)[0]) - 1
    before = len(plt.get_fignums())
    w.f(strength=1.0, step=0)
    assert len(plt.get_fignums()) == before
