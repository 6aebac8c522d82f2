"""The schedule derived by formula, against the schedulers' own numbers (float precision)."""
import pytest
import torch
from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler,
                       LMSDiscreteScheduler, PNDMScheduler, StableDiffusionImg2ImgPipeline)

import sdlib
from sdlib import schedule


def test_betas_and_alpha_bars_by_formula(sd):
    betas = schedule.betas_from_config(sd.scheduler.config)
    assert torch.allclose(betas, sd.scheduler.betas.float(), rtol=1e-6, atol=0)
    alpha_bar = schedule.alpha_bars_from_betas(betas)
    assert torch.allclose(alpha_bar, sd.scheduler.alphas_cumprod, rtol=1e-6, atol=0)
    linear = DDPMScheduler(beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    assert torch.allclose(schedule.betas_from_config(linear.config), linear.betas, rtol=1e-6)


def test_unknown_beta_schedule_is_one_clear_error():
    with pytest.raises(sdlib.SDLibError, match="beta_schedule 'cosine' is not derived here"):
        schedule.betas_from_config({"beta_schedule": "cosine", "num_train_timesteps": 10,
                                    "beta_start": 0.1, "beta_end": 0.2})


@pytest.mark.parametrize("cls", [LMSDiscreteScheduler, EulerDiscreteScheduler, DPMSolverMultistepScheduler])
@pytest.mark.parametrize("steps", [10, 25])
def test_sampler_sigmas_match_scheduler_sigmas(sd, cls, steps):
    sch = cls.from_config(sd.scheduler.config)
    timesteps, sigmas = schedule.sampler_schedule(sch, steps)
    sch.set_timesteps(steps)
    assert torch.equal(timesteps, sch.timesteps)
    assert torch.allclose(sigmas, sch.sigmas[:len(timesteps)].float(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [PNDMScheduler, DDIMScheduler])
def test_vp_sampler_sigmas_come_from_alpha_bar(sd, cls):
    timesteps, sigmas = schedule.sampler_schedule(cls.from_config(sd.scheduler.config), 10)
    ab = sd.scheduler.alphas_cumprod[timesteps.long()]
    assert torch.allclose(sigmas, ((1 - ab) / ab) ** 0.5, rtol=1e-6)
    assert schedule.train_sigma(sd.scheduler, 999) == pytest.approx(14.6146, abs=1e-3)


def test_add_noise_formulas_match_schedulers(sd):
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    ddpm = DDPMScheduler.from_config(sd.scheduler.config)
    t = torch.tensor([100, 700])
    ab = ddpm.alphas_cumprod[t][:, None, None, None]
    assert torch.allclose(schedule.add_noise_vp(x0, eps, ab), ddpm.add_noise(x0, eps, t), atol=1e-6)
    euler = EulerDiscreteScheduler.from_config(sd.scheduler.config)
    euler.set_timesteps(10)
    t = euler.timesteps[3]
    sigma = float(euler.sigmas[3])
    assert torch.allclose(schedule.add_noise_ve(x0, eps, sigma), euler.add_noise(x0, eps, t[None]), atol=1e-5)
    # the two views are one process: VP = VE / sqrt(sigma^2 + 1) at the same timestep
    ab = float(sd.scheduler.alphas_cumprod[int(sd.scheduler.config.num_train_timesteps * 0.3)])
    s = ((1 - ab) / ab) ** 0.5
    assert torch.allclose(schedule.ve_to_vp(schedule.add_noise_ve(x0, eps, s), s),
                          schedule.add_noise_vp(x0, eps, ab), atol=1e-5)


def test_ve_to_vp_is_scale_model_input(sd):
    euler = EulerDiscreteScheduler.from_config(sd.scheduler.config)
    euler.set_timesteps(10)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1)) * euler.init_noise_sigma
    t = euler.timesteps[0]
    mine = schedule.ve_to_vp(x, float(euler.sigmas[0]))
    assert torch.allclose(mine, euler.scale_model_input(x, t), atol=1e-6)


@pytest.mark.parametrize("cls", [PNDMScheduler, EulerDiscreteScheduler, DDIMScheduler])
@pytest.mark.parametrize("strength", [1.0, 0.6, 0.3])
def test_img2img_first_step_matches_diffusers_pipeline(sd, cls, strength):
    sch = cls.from_config(sd.scheduler.config)
    pipe = StableDiffusionImg2ImgPipeline(vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer,
                                          unet=sd.unet, scheduler=sch, safety_checker=None,
                                          feature_extractor=None, requires_safety_checker=False)
    sch.set_timesteps(20)
    timesteps, n_run = pipe.get_timesteps(20, strength, "cpu")
    t_start, t, sigma = schedule.img2img_first_step(cls.from_config(sd.scheduler.config), 20, strength)
    assert t == timesteps[0] and 20 - t_start == n_run
    assert sigma == pytest.approx(float(schedule.train_sigma(sch, timesteps[0])))


def test_img2img_first_step_with_nothing_to_run(sd):
    assert schedule.img2img_first_step(sd.scheduler, 10, 0.05) == (10, None, 0.0)
