"""One loading path: the built-in name, a local folder and a hub id go through the same code."""
import shutil

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

import sdlib
from sdlib import builtin, load


def test_builtin_bundle(sd):
    assert isinstance(sd.tokenizer, CLIPTokenizer)
    assert isinstance(sd.text_encoder, CLIPTextModel)
    assert isinstance(sd.vae, AutoencoderKL) and isinstance(sd.unet, UNet2DConditionModel)
    assert sd.device.type == "cpu" and sd.dtype == torch.float32
    assert sd.vae_scale == 8 and sd.vae.config.latent_channels == 4
    assert sd.text_encoder.config.max_position_embeddings == 77
    cfg = sd.scheduler.config
    assert (cfg.beta_schedule, cfg.beta_start, cfg.beta_end, cfg.num_train_timesteps) == \
        ("scaled_linear", 0.00085, 0.012, 1000)
    assert not any(p.requires_grad for p in sd.unet.parameters())


def test_default_on_cpu_is_builtin(monkeypatch):
    monkeypatch.delenv("SDLIB_MODEL", raising=False)
    assert load.default_model(torch.device("cpu")) == "builtin"
    assert load.default_model(torch.device("cuda")) == load.SD_V1
    monkeypatch.setenv("SDLIB_MODEL", "some/model")
    assert load.default_model(torch.device("cpu")) == "some/model"


def test_local_folder_loads_the_same_weights(sd, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(builtin.builtin_path(), folder)
    other = sdlib.load_sd(str(folder), device="cpu")
    for a, b in zip(sd.unet.state_dict().values(), other.unet.state_dict().values()):
        assert torch.equal(a, b)
    assert other.name == str(folder)


def test_scheduler_class_comes_from_the_folder(sd, tmp_path):
    """SD v1 folders name PNDM, SD 2.x and the built-in model DDIM: the loader obeys the folder."""
    import json

    assert type(sd.scheduler).__name__ == builtin.model.SCHEDULER_CONFIG["_class_name"] == "DDIMScheduler"
    folder = tmp_path / "pndm"
    shutil.copytree(builtin.builtin_path(), folder)
    cfg_file = folder / "scheduler" / "scheduler_config.json"
    cfg_file.write_text(json.dumps(dict(json.loads(cfg_file.read_text()), _class_name="PNDMScheduler")))
    assert type(sdlib.load_sd(str(folder), device="cpu").scheduler).__name__ == "PNDMScheduler"


def test_builtin_is_deterministic(tmp_path):
    a = builtin.build_builtin(tmp_path / "a")
    b = builtin.build_builtin(tmp_path / "b")
    for part in ("unet", "vae", "text_encoder"):
        assert (a / part / "diffusion_pytorch_model.safetensors").exists() or \
            (a / part / "model.safetensors").exists()
        files = sorted(p.name for p in (a / part).iterdir())
        for f in files:
            assert (a / part / f).read_bytes() == (b / part / f).read_bytes(), (part, f)


def test_folder_without_layout(tmp_path):
    (tmp_path / "unet").mkdir()
    with pytest.raises(sdlib.SDLibError, match="not a Stable Diffusion folder.*missing tokenizer, text_encoder, vae, scheduler"):
        sdlib.load_sd(str(tmp_path), device="cpu")


def test_folder_with_pickle_weights_only(tmp_path, sd):
    folder = tmp_path / "m"
    shutil.copytree(builtin.builtin_path(), folder)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    torch.save(sd.unet.state_dict(), folder / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(sdlib.SDLibError, match="safetensors"):
        sdlib.load_sd(str(folder), device="cpu")


def test_invalid_id_is_unknown():
    with pytest.raises(sdlib.SDLibError, match="unknown model 'not a model!!'"):
        sdlib.load_sd("not a model!!", device="cpu")


def test_hub_id_offline_says_how_to_use_builtin(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-sdlib-test-cache")
    with pytest.raises(sdlib.SDLibError) as e:
        sdlib.load_sd("CompVis/stable-diffusion-v1-4", device="cpu")
    msg = str(e.value)
    assert "hub is not reachable" in msg and "load_sd('builtin')" in msg and "\n" not in msg


def test_cuda_asked_but_absent():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(sdlib.SDLibError, match="no CUDA GPU"):
        sdlib.load_sd("builtin", device="cuda")


def test_device_and_dtype_choice():
    assert sdlib.pick_dtype("cpu") == torch.float32
    assert sdlib.pick_dtype("cuda") == torch.float16
    assert sdlib.pick_dtype("cpu", "fp16") == torch.float16
    with pytest.raises(sdlib.SDLibError, match="unknown dtype"):
        sdlib.pick_dtype("cpu", "fp13")
    with pytest.raises(sdlib.SDLibError, match="unknown device"):
        sdlib.pick_device("tpu9")


def test_quiet_loading_silences_both_libraries_progress_bars_and_restores_them():
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    from sdlib.models.quiet import quiet_loading

    tlog.enable_progress_bar()
    dlog.disable_progress_bar()
    with quiet_loading():
        assert not tlog.is_progress_bar_enabled() and not dlog.is_progress_bar_enabled()
    assert tlog.is_progress_bar_enabled() and not dlog.is_progress_bar_enabled()
    dlog.enable_progress_bar()
