"""Schedule maths against the schedulers' own numbers."""
import pytest
import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler, LMSDiscreteScheduler

import sdlib
from sdlib import schedule


def test_sigma_formula_matches_scheduler_sigmas(sd):
    lms = LMSDiscreteScheduler.from_config(sd.scheduler.config)
    sigmas = schedule.sigmas_from_alpha_bars(schedule.alpha_bars(sd.scheduler))
    lms.set_timesteps(1000)
    assert torch.allclose(sigmas.flip(0), lms.sigmas[:-1].float(), rtol=1e-5)
    assert sigmas[0] == pytest.approx(0.0292, abs=1e-4) and sigmas[-1] == pytest.approx(14.6146, abs=1e-3)


def test_init_noise_sigma_and_is_ve(sd):
    euler = EulerDiscreteScheduler.from_config(sd.scheduler.config)
    euler.set_timesteps(25)
    assert schedule.is_ve(euler) and not schedule.is_ve(DDIMScheduler.from_config(sd.scheduler.config))


@pytest.mark.parametrize("kind", schedule.PREDICTION_TYPES)
@pytest.mark.parametrize("cls", [DDIMScheduler, EulerDiscreteScheduler, LMSDiscreteScheduler])
def test_predict_x0_matches_scheduler(cls, kind, sd):
    """x0 from an eps, v or x0 output equals diffusers' own `pred_original_sample`, at every step,
    computed before the step (no scale_model_input first) for VP and VE samplers alike."""
    sch = cls.from_config(sd.scheduler.config, prediction_type=kind)
    sch.set_timesteps(10)
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(1, 4, 8, 8, generator=g) * sch.init_noise_sigma
    for t in sch.timesteps[:4]:
        output = torch.randn(1, 4, 8, 8, generator=g)
        mine = schedule.predict_x0(sch, x_t, output, t)
        sch.scale_model_input(x_t, t)  # LMS warns without it
        out = sch.step(output, t, x_t)
        assert torch.allclose(mine, out.pred_original_sample, atol=1e-5)
        x_t = out.prev_sample


@pytest.mark.parametrize("kind", schedule.PREDICTION_TYPES)
def test_x0_and_noise_from_output_invert_the_forward_process(kind):
    """Given the true target for each prediction type, x0 and noise come back exactly."""
    g = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    alpha_bar = torch.tensor([0.9, 0.05])  # one per batch item
    x_t = schedule.add_noise_vp(x0, noise, alpha_bar)
    ab = alpha_bar.view(-1, 1, 1, 1)
    target = {"epsilon": noise, "sample": x0,
              "v_prediction": ab.sqrt() * noise - (1 - ab).sqrt() * x0}[kind]  # Salimans & Ho 2022
    assert torch.allclose(schedule.x0_from_output(kind, x_t, target, alpha_bar), x0, atol=1e-5)
    assert torch.allclose(schedule.noise_from_output(kind, x_t, target, alpha_bar), noise, atol=1e-5)


def test_unknown_prediction_type_is_a_clear_error(sd):
    sch = DDIMScheduler.from_config(sd.scheduler.config)
    sch.register_to_config(prediction_type="flow")
    sch.set_timesteps(5)
    with pytest.raises(sdlib.SDLibError, match="prediction_type 'flow'.*epsilon, v_prediction, sample"):
        schedule.predict_x0(sch, torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 8, 8), sch.timesteps[0])


def test_sampler_sigma_needs_no_stepping_state(sd):
    """sigma at the first img2img step is right before scale_model_input or step are called."""
    euler = EulerDiscreteScheduler.from_config(sd.scheduler.config)
    euler.set_timesteps(10)
    euler.set_begin_index(4)
    assert euler.step_index is None
    assert schedule.sampler_sigma(euler, euler.timesteps[4]) == pytest.approx(float(euler.sigmas[4]))
    ddim = DDIMScheduler.from_config(sd.scheduler.config)
    ddim.set_timesteps(10)
    t = int(ddim.timesteps[4])
    expected = ((1 - ddim.alphas_cumprod[t]) / ddim.alphas_cumprod[t]) ** 0.5
    assert schedule.sampler_sigma(ddim, ddim.timesteps[4]) == pytest.approx(float(expected), rel=1e-6)


def test_loss_step_is_one_step_seen_at_two_scales():
    """x_t - sigma^2 grad (VE) and x_t - (1 - alpha_bar) grad (VP) are the same move:
    VP latents are sqrt(alpha_bar) times VE ones, and their gradient 1/sqrt(alpha_bar) times."""
    from types import SimpleNamespace

    sigma = 3.0
    alpha_bar = 1 / (1 + sigma**2)
    g = torch.Generator().manual_seed(2)
    x_ve, grad_ve = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
    timesteps = torch.tensor([500])
    ve = SimpleNamespace(init_noise_sigma=sigma, timesteps=timesteps, sigmas=torch.tensor([sigma, 0.0]))
    table = torch.full((1000,), alpha_bar)
    vp = SimpleNamespace(init_noise_sigma=1.0, alphas_cumprod=table, timesteps=timesteps)
    moved_ve = schedule.loss_guidance_step(ve, x_ve, grad_ve, timesteps[0])
    moved_vp = schedule.loss_guidance_step(vp, alpha_bar**0.5 * x_ve, grad_ve / alpha_bar**0.5, timesteps[0])
    assert torch.allclose(moved_ve, x_ve - sigma**2 * grad_ve)
    assert torch.allclose(moved_vp, alpha_bar**0.5 * moved_ve, atol=1e-6)


@pytest.mark.parametrize("steps,strength,expected", [(25, 0.8, (5, 20)), (50, 0.3, (35, 15)),
                                                     (10, 1.0, (0, 10)), (10, 0.05, (10, 0))])
def test_img2img_skip(steps, strength, expected):
    assert schedule.img2img_skip(steps, strength) == expected


def test_make_scheduler_unknown_name(sd):
    with pytest.raises(sdlib.SDLibError, match="scheduler must be one of 'lms'.*got 'heun9'"):
        sdlib.make_scheduler("heun9", sd.scheduler)
