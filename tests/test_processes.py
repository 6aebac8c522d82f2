"""The forward processes behind one interface (sdlib.processes): VP equals diffusers' DDPM-family
schedulers, flow equals FlowMatchEulerDiscreteScheduler, and nothing else reads a scheduler's tables."""
import re
from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler

import sdlib
from sdlib import processes
from sdlib.builtin import model

ROOT = Path(__file__).resolve().parent.parent


def vp_scheduler(**kw):
    return DDIMScheduler.from_config({**model.SCHEDULER_CONFIG, **kw})


def test_kind_tells_the_processes_apart():
    assert processes.kind(vp_scheduler()) == "vp"
    assert processes.kind(EulerDiscreteScheduler.from_config(model.SCHEDULER_CONFIG)) == "vp"
    assert processes.kind(FlowMatchEulerDiscreteScheduler()) == "flow"
    with pytest.raises(sdlib.SDLibError, match="scheduler must be a diffusers scheduler of a known process"):
        processes.kind(object())


def test_only_the_process_module_reads_the_alpha_bar_table():
    hits = [str(p.relative_to(ROOT)) for p in (ROOT / "sdlib").rglob("*.py")
            if "alphas_cumprod" in p.read_text() and "processes" not in p.parts]
    assert hits == []


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_vp_forward_process_and_target_are_the_schedulers(prediction_type):
    sch = vp_scheduler(prediction_type=prediction_type)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g)
    t = torch.tensor([0, 500, 999])
    assert torch.allclose(processes.add_noise(sch, x0, noise, t), sch.add_noise(x0, noise, t), atol=1e-6)
    target = {"epsilon": noise, "v_prediction": sch.get_velocity(x0, noise, t), "sample": x0}[prediction_type]
    assert torch.allclose(processes.training_target(sch, x0, noise, t), target, atol=1e-6)


def test_flow_forward_process_is_scale_noise_and_x0_comes_back():
    sch = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sch.set_timesteps(10)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
    for t in sch.timesteps[[0, 4, 9]]:
        x_t = processes.add_noise(sch, x0, noise, t.reshape(1))
        assert torch.allclose(x_t, sch.scale_noise(x0, t.reshape(1), noise), atol=1e-6)
        v = processes.training_target(sch, x0, noise, t.reshape(1))  # noise - x0
        assert torch.allclose(processes.predict_x0(sch, x_t, v, t), x0, atol=1e-5)
        assert torch.allclose(processes.predict_noise(sch, x_t, v, t), noise, atol=1e-5)


def test_flow_euler_step_is_one_straight_line():
    """FlowMatchEulerDiscreteScheduler.step moves x_t along the velocity: x + (sigma_next - sigma) v."""
    sch = FlowMatchEulerDiscreteScheduler()
    sch.set_timesteps(4)
    x, v = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    t, t_next = sch.timesteps[0], sch.timesteps[1]
    by_hand = x + (processes.sampler_sigma(sch, t_next) - processes.sampler_sigma(sch, t)) * v
    assert torch.allclose(sch.step(v, t, x).prev_sample, by_hand, atol=1e-6)


def test_training_timesteps_are_drawn_as_each_model_was_trained():
    g = torch.Generator().manual_seed(0)
    t = processes.draw_timesteps(vp_scheduler(), 1000, g)
    assert t.dtype == torch.long and 0 <= int(t.min()) and int(t.max()) <= 999
    s = processes.draw_timesteps(FlowMatchEulerDiscreteScheduler(), 1000, g) / 1000  # sigma, logit-normal
    assert s.is_floating_point() and 0 < float(s.min()) and float(s.max()) < 1
    assert abs(float(s.median()) - 0.5) < 0.05  # sigmoid of a standard normal: median 1/2


@pytest.mark.parametrize("t, message", [
    (1000, "t must be a whole number from 0 to 999, got 1000."),
    (torch.tensor([0.5, 1.0]), "t must be a timestep in 0..999 or an integer tensor (2,) of them"),
    (torch.tensor([1, 2, 3]), "t must be a timestep in 0..999 or an integer tensor (2,) of them"),
])
def test_bad_timesteps_are_one_clear_error(t, message):
    with pytest.raises(sdlib.SDLibError, match=re.escape(message)):
        processes.check_timesteps(vp_scheduler(), t, 2)
