"""Flow matching (notebook 10): the formulas of `sdlib.processes.flow` against diffusers'
FlowMatchEulerDiscreteScheduler, the sampler on a flow model against a loop written out by hand,
img2img, loss guidance and the callbacks through the same process interface, and one clear error
for a sampler of the other process."""
import dataclasses
import re

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

import sdlib
from sdlib import processes
from sdlib.models.flow import FLOW_SCHEDULER_CONFIG
from sdlib.processes import flow
from sdlib.training import objective


@pytest.fixture(scope="module")
def flow_sd(sd):
    """A flow model of the built-in model's shapes: the shipped one when the package has it, else
    the eps UNet read as a velocity (the equalities below hold for any weights)."""
    try:
        return sdlib.load_sd("builtin-flow", device="cpu")
    except sdlib.SDLibError:
        return dataclasses.replace(sd, scheduler=FlowMatchEulerDiscreteScheduler.from_config(FLOW_SCHEDULER_CONFIG))


def draws(*shape, seed=0, n=2):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g) for _ in range(n)]


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_forward_process_is_scale_noise_at_every_sampler_timestep(shift):
    sch = FlowMatchEulerDiscreteScheduler(shift=shift)
    sch.set_timesteps(8)
    x0, noise = draws(1, 4, 8, 8)
    for t in sch.timesteps:
        sigma = flow.sigma_of(sch, t)
        assert torch.allclose(flow.add_noise_flow(x0, noise, sigma), sch.scale_noise(x0, t.reshape(1), noise), atol=1e-6)


def test_velocity_target_points_from_the_data_to_the_noise_and_x0_comes_back():
    x0, noise = draws(3, 4, 8, 8)
    sigma = torch.tensor([0.1, 0.5, 0.9])
    x_t = flow.add_noise_flow(x0, noise, sigma)
    v = flow.velocity_target(x0, noise)
    assert torch.equal(v, noise - x0)
    assert torch.allclose(flow.x0_from_velocity(x_t, v, sigma), x0, atol=1e-6)
    assert torch.allclose(flow.noise_from_velocity(x_t, v, sigma), noise, atol=1e-6)
    # the velocity is the path's derivative: a small step in sigma moves x_t by v * d sigma
    d = 1e-3
    assert torch.allclose((flow.add_noise_flow(x0, noise, sigma + d) - x_t) / d, v, atol=1e-3)


def test_the_library_loss_is_the_flow_loss_by_hand(flow_sd):
    x0, noise = draws(2, 4, 16, 16)
    t = torch.tensor([250.0, 800.0])
    emb = sdlib.encode_text(flow_sd, ["a red circle", ""])
    sigma = (t / 1000)[:, None, None, None]
    with torch.no_grad():
        v = flow_sd.unet((1 - sigma) * x0 + sigma * noise, t, encoder_hidden_states=emb).sample
        by_hand = ((v - (noise - x0)) ** 2).mean()
        lib = objective.denoising_loss(flow_sd, x0, emb, t, noise)
    assert torch.allclose(lib, by_hand, atol=1e-6)


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_euler_step_is_the_schedulers_step_all_the_way_down(shift):
    sch = FlowMatchEulerDiscreteScheduler(shift=shift)
    sch.set_timesteps(6)
    x, = draws(1, 4, 8, 8, n=1)
    mine = x.clone()
    for i, t in enumerate(sch.timesteps):
        v = torch.sin(x + i)  # any velocity field
        x = sch.step(v, t, x).prev_sample
        mine = flow.euler_step(mine, torch.sin(mine + i), sch.sigmas[i], sch.sigmas[i + 1])
    assert torch.allclose(mine, x, atol=1e-6) and float(sch.sigmas[-1]) == 0.0


def test_shift_formula_is_the_schedulers_shift():
    """diffusers spaces N sigmas evenly from 1 down to its smallest training sigma (itself shifted),
    then shifts them: shift_sigma(linspace(1, sigma_min, N)), and appends 0."""
    plain, shifted = FlowMatchEulerDiscreteScheduler(shift=1.0), FlowMatchEulerDiscreteScheduler(shift=3.0)
    for s in (plain, shifted):
        s.set_timesteps(10)
    even = torch.linspace(1.0, shifted.sigma_min, 10)
    assert torch.allclose(flow.shift_sigma(even, 3.0), shifted.sigmas[:-1], atol=1e-6)
    assert torch.allclose(shifted.timesteps, shifted.sigmas[:-1] * 1000, atol=1e-3)  # t = sigma * T
    assert bool((shifted.sigmas[1:-1] > plain.sigmas[1:-1]).all())  # shifted towards the noise


def test_flux_mu_shift_is_the_schedulers_dynamic_shift():
    import math

    dynamic = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, time_shift_type="exponential")
    plain = FlowMatchEulerDiscreteScheduler()
    mu = flow.flux_mu(1024)  # a 512 px Flux picture: 32 x 32 patches
    dynamic.set_timesteps(10, mu=mu)
    plain.set_timesteps(10)
    assert abs(flow.flux_mu(256) - 0.5) < 1e-9 and abs(flow.flux_mu(4096) - 1.15) < 1e-9
    assert torch.allclose(flow.shift_sigma(plain.sigmas, math.exp(mu)), dynamic.sigmas, atol=1e-5)


def test_generate_is_the_loop_by_hand(flow_sd):
    prompt, steps, scale = "a blue square", 6, 4.0
    out = sdlib.generate(flow_sd, prompt, num_steps=steps, guidance_scale=scale, seed=3, output="latents")
    sch = FlowMatchEulerDiscreteScheduler.from_config(flow_sd.scheduler.config)
    sch.set_timesteps(steps)
    emb = torch.cat([sdlib.encode_text(flow_sd, [""]), sdlib.encode_text(flow_sd, [prompt])])
    x = torch.randn((1, 4, 16, 16), generator=torch.Generator().manual_seed(3))  # sigma = 1: pure noise
    with torch.no_grad():
        for i, t in enumerate(sch.timesteps):
            v_u, v_c = flow_sd.unet(torch.cat([x, x]), t, encoder_hidden_states=emb).sample.chunk(2)
            v = v_u + scale * (v_c - v_u)  # CFG on the velocity
            x = x + (sch.sigmas[i + 1] - sch.sigmas[i]) * v
    assert torch.allclose(out, x, atol=1e-5)


def test_callbacks_see_x0_as_the_latents_minus_sigma_v(flow_sd):
    seen = []

    def callback(step, t, sigma, x_t, eps, x0_pred):
        seen.append((sigma, x_t, eps, x0_pred))

    sdlib.generate(flow_sd, "a red circle", num_steps=4, callback=callback, output="latents")
    sch = FlowMatchEulerDiscreteScheduler.from_config(flow_sd.scheduler.config)
    sch.set_timesteps(4)
    assert [s[0] for s in seen] == pytest.approx([float(s) for s in sch.sigmas[:4]])
    for sigma, x_t, eps, x0_pred in seen:  # x0 = x_t - sigma v, noise = x_t + (1 - sigma) v: one line
        v = eps - x0_pred
        assert torch.allclose(x_t, (1 - sigma) * x0_pred + sigma * eps, atol=1e-4)
        assert torch.allclose(x0_pred, x_t - sigma * v, atol=1e-4)


def test_img2img_keeps_more_of_the_picture_at_low_strength(flow_sd):
    from sdlib.builtin import scenes

    start = scenes.render(scenes.make_scene("red", "circle"), 128)  # (128, 128, 3) uint8
    image = sdlib.to_tensor(start)
    near = sdlib.generate(flow_sd, "a blue square", init_image=start, strength=0.3, num_steps=10, seed=1,
                          output="tensor")
    far = sdlib.generate(flow_sd, "a blue square", init_image=start, strength=1.0, num_steps=10, seed=1,
                         output="tensor")
    assert (near - image).abs().mean() < (far - image).abs().mean()


def test_img2img_starts_from_the_schedulers_scale_noise(flow_sd):
    from sdlib.sampling import sampler

    sch = FlowMatchEulerDiscreteScheduler.from_config(flow_sd.scheduler.config)
    start = sdlib.to_tensor(sdlib.builtin.scenes.render(sdlib.builtin.scenes.make_scene("red", "circle"), 128))
    g = torch.Generator().manual_seed(5)
    x_t, timesteps = sampler.initial_latents(flow_sd, sch, 10, (1, 4, 16, 16), g, init_image=sdlib.to_pil(start)[0],
                                             strength=0.5)
    g = torch.Generator().manual_seed(5)
    x0 = sdlib.vae.encode(flow_sd, [sdlib.to_pil(start)[0]], sample=True, generator=g)
    noise = torch.randn((1, 4, 16, 16), generator=g)
    sigma = flow.sigma_of(sch, timesteps[0])
    assert len(timesteps) == 5 and torch.allclose(x_t, flow.add_noise_flow(x0, noise, sigma), atol=1e-5)


def test_loss_guidance_moves_a_flow_model_towards_its_loss(flow_sd):
    plain = sdlib.generate(flow_sd, "a red circle", num_steps=8, seed=2, output="tensor")
    blue = sdlib.generate(flow_sd, "a red circle", num_steps=8, seed=2, output="tensor",
                          loss_fn=sdlib.guidance.blue_loss, loss_scale=sdlib.guidance.DEFAULT_BLUE_SCALE)
    assert float(sdlib.guidance.blue_loss(blue)) < float(sdlib.guidance.blue_loss(plain))


def test_a_sampler_of_the_other_process_is_one_clear_error(sd, flow_sd):
    with pytest.raises(sdlib.SDLibError, match=re.escape("scheduler must sample the model's own process (flow:")):
        sdlib.generate(flow_sd, "a red circle", num_steps=2, scheduler="ddim")
    with pytest.raises(sdlib.SDLibError, match=re.escape("scheduler must sample the model's own process (vp:")):
        sdlib.generate(sd, "a red circle", num_steps=2, scheduler="flow_euler")
    with pytest.raises(sdlib.SDLibError, match="StableDiffusionPipeline samples the VP process only"):
        flow_sd.pipeline()
