"""A broken safetensors file gets one SDLibError that names it (issue 27): a model folder whose
weights were cut short by a failed copy or download, a textual-inversion file, a LoRA; not the
safetensors library's traceback, and not "has no safetensors weights", which hides the cause."""
import shutil

import pytest
import torch

import sdlib
from sdlib import finetune
from sdlib.checks import check_safetensors_file


def cut(path, keep):
    """`path` cut to its first `keep` bytes (a negative keep: all but the last -keep)."""
    data = path.read_bytes()
    path.write_bytes(data[:keep])


def broken_message(path):
    return f"{path} is corrupt or truncated"


def test_a_complete_file_passes_and_a_cut_one_is_named(tmp_path):
    path = sdlib.embeddings.save_embedding(tmp_path / "w.safetensors", "<w>", torch.ones(8))
    assert check_safetensors_file(path) == path
    for keep in (-1, 40, 9, 3, 0):
        cut(path, keep)
        with pytest.raises(sdlib.SDLibError, match=f"^{broken_message(path)}"):
            check_safetensors_file(path)


def test_a_header_that_is_not_json_is_named(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes((16).to_bytes(8, "little") + b"not json at all!" + b"\0" * 8)
    with pytest.raises(sdlib.SDLibError, match="corrupt or truncated"):
        check_safetensors_file(path)


def test_load_sd_names_the_truncated_weights_of_a_folder(tmp_path):
    folder = shutil.copytree(sdlib.builtin.builtin_path(), tmp_path / "model")
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    cut(weights, 100_000)
    with pytest.raises(sdlib.SDLibError) as e:
        sdlib.load_sd(str(folder), device="cpu")
    assert str(e.value).startswith(broken_message(weights)) and "\n" not in str(e.value)


def test_load_textual_inversion_names_the_truncated_file(sd, tmp_path):
    path = finetune.save_textual_inversion(tmp_path / "w.safetensors", "<w>", torch.ones(sd.text_encoder.config.hidden_size))
    cut(path, -4)
    with pytest.raises(sdlib.SDLibError, match=f"^{broken_message(path)}"):
        sdlib.embeddings.load_textual_inversion(sd, path)


def test_load_lora_names_the_truncated_file(sd, tmp_path):
    finetune.add_lora(sd, rank=2, seed=0)
    try:
        folder = tmp_path / "lora"
        finetune.save_lora(sd, folder)
    finally:
        finetune.remove_lora(sd)
    path = folder / finetune.LORA_FILE
    cut(path, -100)
    with pytest.raises(sdlib.SDLibError, match=f"^{broken_message(path)}"):
        finetune.load_lora(sd, folder)
    assert not finetune.has_lora(sd)
