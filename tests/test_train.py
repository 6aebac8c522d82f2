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
    first = weights(tmp_path / "unet", "unet")
    train.main(["export", "--vae", str(tmp_path / "vae"), "--unet", str(tmp_path / "unet"),
                "--to", str(tmp_path / "model")])
    sd = sdlib.load_sd(str(tmp_path / "model"), device="cpu")
    assert torch.equal(sd.unet.state_dict()["conv_in.weight"], first["conv_in.weight"])
    assert 0.05 < sd.vae.config.scaling_factor < 50  # 1 / std of the training latents
    image = sdlib.generate(sd, "a red circle", num_steps=2)
    assert image.size == (sd.image_size, sd.image_size)
