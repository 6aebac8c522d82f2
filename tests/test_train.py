"""Training is deterministic, resumes exactly, and exports a folder that loads like SD."""
import torch
from safetensors.torch import load_file

import sdlib
from sdlib.builtin import train


def weights(run, name):
    return load_file(sorted(run.glob("step*"))[-1] / f"{name}.safetensors")


def test_lr_schedule_warms_up_then_decays():
    lrs = [train.lr_at(s, 1000, 1e-3, warmup=100) for s in range(1000)]
    assert lrs[0] < lrs[50] < lrs[99] == max(lrs)
    assert abs(lrs[-1] - 1e-4) < 2e-6


def test_vae_resume_equals_straight_run(tmp_path):
    common = ["--batch", "2", "--crop", "16", "--every", "2", "--threads", "1"]
    train.main(["vae", "--out", str(tmp_path / "a"), "--steps", "4", *common])
    train.main(["vae", "--out", str(tmp_path / "b"), "--steps", "4", "--until", "2", *common])
    train.main(["vae", "--out", str(tmp_path / "b"), "--steps", "4", *common])  # resumes at 2
    a, b = weights(tmp_path / "a", "vae"), weights(tmp_path / "b", "vae")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a" / "loss.csv").read_text().startswith("0,")


def test_unet_stage_and_export_load_as_sd(tmp_path):
    common = ["--batch", "2", "--every", "2", "--threads", "1"]
    train.main(["vae", "--out", str(tmp_path / "vae"), "--steps", "2", "--crop", "16", *common])
    train.main(["unet", "--out", str(tmp_path / "unet"), "--vae", str(tmp_path / "vae"),
                "--steps", "2", "--data", "8", *common])
    raw, ema = weights(tmp_path / "unet", "unet"), weights(tmp_path / "unet", "ema_unet")
    assert not torch.equal(raw["conv_in.weight"], ema["conv_in.weight"])  # an average, not a copy
    train.main(["export", "--vae", str(tmp_path / "vae"), "--unet", str(tmp_path / "unet"),
                "--to", str(tmp_path / "model")])
    on_disk = load_file(tmp_path / "model" / "unet" / "diffusion_pytorch_model.safetensors")
    assert on_disk["conv_in.weight"].dtype == torch.float16  # half the size on disk
    sd = sdlib.load_sd(str(tmp_path / "model"), device="cpu")
    assert sd.unet.dtype == torch.float32  # ... and float32 on a CPU
    assert torch.equal(sd.unet.state_dict()["conv_in.weight"], ema["conv_in.weight"].half().float())
    assert 0.05 < sd.vae.config.scaling_factor < 50  # 1 / std of the training latents
    image = sdlib.generate(sd, "a red circle", num_steps=2)
    assert image.size == (sd.image_size, sd.image_size)

    # A lost run restarts from the exported folder: --init for the weights, the folder as the VAE.
    train.main(["unet", "--out", str(tmp_path / "again"), "--vae", str(tmp_path / "model"),
                "--init", str(tmp_path / "model"), "--steps", "1", "--data", "8", *common])
    assert (tmp_path / "again" / "step0000001" / "unet.safetensors").exists()


def test_ema_is_the_running_average():
    m = torch.nn.Linear(2, 2)
    ema = train.EMA({"m": m}, decay=0.9)
    before = ema.models["ema_m"].weight.clone()
    with torch.no_grad():
        m.weight.add_(1.0)
    ema.update(step=100)  # past the warm-up: d = 0.9
    assert torch.allclose(ema.models["ema_m"].weight, 0.9 * before + 0.1 * m.weight)


def test_vae_pictures_mix_scenes_photos_and_textures():
    x = train._vae_pictures(40, seed=0, size=32)  # uint8 (40, 32, 32, 3)
    assert x.shape == (40, 32, 32, 3) and x.dtype == "uint8"
    assert (train._vae_pictures(40, seed=0, size=32) == x).all()  # seeded


def test_the_unet_stage_minimises_the_library_objective():
    """The built-in trainer's loss is sdlib.training.objective's: with the step's own draws, DDPM's
    simple loss (eq. 14) on x_t from eq. 4, computed here by hand from the schedule's formula."""
    import torch.nn.functional as F
    from diffusers import DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from sdlib.builtin import model
    from sdlib.processes import vp

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**model.UNET_CONFIG)
    text = CLIPTextModel(CLIPTextConfig(**model.TEXT_CONFIG))
    scheduler = DDIMScheduler.from_config(model.SCHEDULER_CONFIG)
    x0_all, ids = torch.randn(6, 4, 16, 16), torch.randint(0, 49408, (6, 3, 77))
    empty = ids[0, 0].clone()
    with torch.no_grad():
        got = train.unet_step_loss(unet, text, scheduler, x0_all, ids, empty, 2, 0.5, 0, 7)
        g = torch.Generator().manual_seed(train.step_seed(0, 7))  # the same draws, in the same order
        idx = torch.randint(0, 6, (2,), generator=g)
        tok = ids[idx, torch.randint(0, 3, (2,), generator=g)]
        tok[torch.rand(2, generator=g) < 0.5] = empty
        noise = torch.randn(2, 4, 16, 16, generator=g)
        t = torch.randint(0, 1000, (2,), generator=g)
        alpha_bar = vp.alpha_bars_from_betas(vp.betas_from_config(model.SCHEDULER_CONFIG))[t].view(-1, 1, 1, 1)
        x_t = alpha_bar.sqrt() * x0_all[idx] + (1 - alpha_bar).sqrt() * noise  # DDPM eq. 4
        eps = unet(x_t, t, encoder_hidden_states=text(tok)[0]).sample
        expected = F.mse_loss(eps, noise)  # DDPM eq. 14
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-7), (got, expected)
