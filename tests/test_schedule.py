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


@pytest.mark.parametrize("cls", [DDIMScheduler, EulerDiscreteScheduler, LMSDiscreteScheduler])
def test_predict_x0_matches_scheduler(cls, sd):
    sch = cls.from_config(sd.scheduler.config)
    sch.set_timesteps(10)
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(1, 4, 8, 8, generator=g) * sch.init_noise_sigma
    eps = torch.randn(1, 4, 8, 8, generator=g)
    for t in sch.timesteps[:3]:
        sch.scale_model_input(x_t, t)
        mine = schedule.predict_x0(sch, x_t, eps, t)
        out = sch.step(eps, t, x_t)
        assert torch.allclose(mine, out.pred_original_sample, atol=1e-5)
        x_t = out.prev_sample


@pytest.mark.parametrize("steps,strength,expected", [(25, 0.8, (5, 20)), (50, 0.3, (35, 15)),
                                                     (10, 1.0, (0, 10)), (10, 0.05, (10, 0))])
def test_img2img_skip(steps, strength, expected):
    assert schedule.img2img_skip(steps, strength) == expected


def test_make_scheduler_unknown_name(sd):
    with pytest.raises(sdlib.SDLibError, match="unknown scheduler 'heun9'"):
        sdlib.make_scheduler("heun9", sd.scheduler)
