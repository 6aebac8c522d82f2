"""Stable Diffusion 3's parts in the model bundle: a transformer denoiser, two CLIP text encoders,
and the text it reads (Esser et al. 2024, "Scaling rectified flow transformers for high-resolution
image synthesis", sec. 5.2; diffusers' `StableDiffusion3Pipeline`).

The text, as the pipeline builds it with no T5 (`text_encoder_3=None`, how the course loads SD3):

    tokens = cat(pad(cat(h1[-2], h2[-2], features), to J), zeros(max_sequence_length, J), along tokens)
                                                           # (B, 77 + max_sequence_length, J)
    pooled = cat(pool1, pool2, features)                   # (B, P): each CLIP's projected EOS vector

h[-2]: each CLIP's penultimate hidden states (B, 77, width); J: the transformer's
`joint_attention_dim` (the T5 width SD3 pads to); P: its `pooled_projection_dim`. `joint_text` is
that formula's one home; `JointText` carries the pair through the sampler; `transformer_output`
calls the transformer as the pipeline does. The built-in SD3 in miniature (`SD3_NAME`, trained by
`sdlib.builtin.train_sd3`) is this layout at the built-in model's size. Taught in notebooks/11.
"""
import copy
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import builtin_files
from .quiet import quiet_loading

SD3_NAME = "builtin-sd3"  # load_sd("builtin-sd3"), and the folder name under sdlib/models/
SD3_BUILTIN = builtin_files.SHIPPED.parent / SD3_NAME
MAX_SEQUENCE_LENGTH = 256  # the pipeline's default: that many zero "T5" tokens follow the 77 CLIP ones
PIPELINE_CLASS = "StableDiffusion3Pipeline"
MODEL_INDEX = {  # what the hub's SD3 folders list, with no T5 (and no IP-Adapter image encoder)
    "_class_name": PIPELINE_CLASS, "_diffusers_version": "0.42.1",
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
    "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
    "text_encoder_3": [None, None],
    "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
    "tokenizer_3": [None, None],
    "transformer": ["diffusers", "SD3Transformer2DModel"], "vae": ["diffusers", "AutoencoderKL"],
    "image_encoder": [None, None], "feature_extractor": [None, None],
}


def sd3_folder():
    """The shipped SD3 miniature's folder; SDLibError when the package has none (a checkout before
    training). Used by load_sd; taught in notebooks/11."""
    return builtin_files.shipped_folder(SD3_BUILTIN, "transformer", "SD3", "train_sd3", "training/sd3-builtin.md")


def is_sd3_folder(folder):
    """Does `folder` hold a StableDiffusion3Pipeline in the diffusers layout (its model_index says so)?
    Used by load_sd; the SD3 bundle is taught in notebooks/11."""
    index = Path(folder) / "model_index.json"
    return index.is_file() and json.loads(index.read_text()).get("_class_name") == PIPELINE_CLASS


@dataclass
class JointText:
    """SD3's text conditioning for B prompts: the token sequence (B, S, J) the joint attention reads
    and the pooled vector (B, P) the adaptive norms read. Behaves like a batch of embeddings where
    the sampler needs it (len, to, expand, `cat`). Taught in notebooks/11."""

    tokens: torch.Tensor  # (B, 77 + max_sequence_length, J)
    pooled: torch.Tensor  # (B, P)

    def __len__(self):
        return len(self.tokens)

    def to(self, *args, **kwargs):
        return JointText(self.tokens.to(*args, **kwargs), self.pooled.to(*args, **kwargs))

    def expand(self, n, *_):
        """n copies of a one-prompt conditioning (as a tensor's expand(n, -1, -1))."""
        return JointText(self.tokens.expand(n, -1, -1), self.pooled.expand(n, -1))

    @staticmethod
    def cat(parts):
        """Stacked along the batch, as torch.cat (the [uncond; text] batch of guidance)."""
        return JointText(torch.cat([p.tokens for p in parts]), torch.cat([p.pooled for p in parts]))


def check_joint_text(name, emb, transformer):
    """`emb` as given if it is a `JointText` whose widths fit `transformer` (tokens (B, S, J),
    pooled (B, P) with as many rows), else SDLibError naming `name`. Used by the sampler; SD3's text
    is taught in notebooks/11."""
    from ..errors import SDLibError

    J, P = transformer.config.joint_attention_dim, transformer.config.pooled_projection_dim
    if not (isinstance(emb, JointText) and emb.tokens.ndim == 3 and emb.tokens.shape[-1] == J
            and emb.pooled.ndim == 2 and emb.pooled.shape[-1] == P and len(emb.pooled) == len(emb.tokens)):
        got = (f"tokens {tuple(emb.tokens.shape)}, pooled {tuple(emb.pooled.shape)}" if isinstance(emb, JointText)
               else type(emb).__name__)
        raise SDLibError(f"{name} must be SD3's text conditioning, a JointText with tokens (B, S, {J}) and pooled "
                         f"(B, {P}) (what sdlib.encode_text(sd, prompts) returns for this model), got {got}.")
    return emb


def joint_text(text_encoders, ids, ids_2=None, max_sequence_length=MAX_SEQUENCE_LENGTH, *, joint_attention_dim):
    """What StableDiffusion3Pipeline.encode_prompt makes of token ids (B, 77) with no T5 (module
    doc): a `JointText` with tokens (B, 77 + max_sequence_length, joint_attention_dim) and pooled
    (B, sum of the projection widths). `ids_2`: the second tokenizer's ids (SD3's bigG tokenizer
    pads differently), `ids` when None. Taught in notebooks/11, section 5."""
    enc, enc_2 = text_encoders
    ids_2 = ids if ids_2 is None else ids_2
    outs = [enc(ids.to(enc.device), output_hidden_states=True),
            enc_2(ids_2.to(enc_2.device), output_hidden_states=True)]
    clip = torch.cat([o.hidden_states[-2].to(enc.dtype) for o in outs], dim=-1)  # (B, 77, w1 + w2)
    clip = F.pad(clip, (0, joint_attention_dim - clip.shape[-1]))  # (B, 77, J): zeros up to the T5 width
    t5 = torch.zeros(clip.shape[0], max_sequence_length, joint_attention_dim, dtype=enc.dtype, device=clip.device)
    return JointText(torch.cat([clip, t5], dim=-2), torch.cat([o[0] for o in outs], dim=-1))


def transformer_output(transformer, x, t, emb):
    """SD3Transformer2DModel on latents x (B, C, h, w) at timestep t (a number or a 0-d tensor,
    sigma * 1000) with `emb` a JointText of B rows: the velocity (B, C, h, w), called as
    StableDiffusion3Pipeline calls it. Used by the sampler; taught in notebooks/11, section 6."""
    t = torch.as_tensor(t, device=x.device).reshape(-1).expand(len(x))  # (B,)
    return transformer(hidden_states=x, timestep=t, encoder_hidden_states=emb.tokens,
                       pooled_projections=emb.pooled).sample


def load_parts(source, local_only, dtype):
    """The seven parts of an SD3 folder or hub id (no T5: `text_encoder_3`/`tokenizer_3` are not
    read), as keyword arguments of the `SD` bundle. Used by load_sd; the parts are taught in notebooks/11."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    kw = dict(local_files_only=local_only)
    weights = dict(kw, use_safetensors=True, torch_dtype=dtype)
    return dict(
        tokenizer=CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **kw),
        tokenizer_2=CLIPTokenizer.from_pretrained(source, subfolder="tokenizer_2", **kw),
        text_encoder=CLIPTextModelWithProjection.from_pretrained(source, subfolder="text_encoder", **weights),
        text_encoder_2=CLIPTextModelWithProjection.from_pretrained(source, subfolder="text_encoder_2", **weights),
        vae=AutoencoderKL.from_pretrained(source, subfolder="vae", **weights),
        unet=None,
        transformer=SD3Transformer2DModel.from_pretrained(source, subfolder="transformer", **weights),
        scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(source, subfolder="scheduler", **kw),
    )


def write_sd3_folder(folder, parts, scheduler_config, dtype=torch.float16, readme="", pad_tokens=(None, None)):
    """Write a StableDiffusion3Pipeline folder with no T5 (safetensors): `parts` {"transformer",
    "text_encoder", "text_encoder_2", "vae"} stored in `dtype`, the scheduler config, SD v1's CLIP
    tokenizer as both tokenizers (`pad_tokens`: each one's pad token, None: EOS), model_index.json.
    The text encoders' configs say float32, so that `StableDiffusion3Pipeline.from_pretrained(folder,
    text_encoder_3=None, tokenizer_3=None)` computes in float32 everywhere (diffusers' models load in
    float32 unless told, transformers' in their config's dtype). Written to a temporary folder, then
    moved into place: an existing SD3 folder is replaced, any other folder left alone (FileExistsError).
    Used by the built-in SD3 (sdlib.builtin.sd3) and the SD3 twin; the layout is taught in notebooks/11."""
    from diffusers.utils import logging

    from .clip_tokenizer import EOS, save_clip_tokenizer

    logging.set_verbosity_error()  # "modules that should be kept in float32": there are none
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not is_sd3_folder(folder):
        raise FileExistsError(f"{folder} exists and is not a StableDiffusion3Pipeline folder: not replacing it")
    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "scheduler").mkdir(parents=True)
    (tmp / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler_config, indent=2))
    for name, pad in zip(("tokenizer", "tokenizer_2"), pad_tokens):
        save_clip_tokenizer(tmp / name, pad_token=pad or EOS)
    (tmp / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=2))
    with quiet_loading():  # no "Writing model shards" bar in a notebook
        for name, module in parts.items():  # a copy: the caller's (training) modules keep their dtype
            copy.deepcopy(module).to(dtype).save_pretrained(tmp / name, safe_serialization=True)
            if name.startswith("text_encoder"):  # transformers loads in the config's dtype: compute in float32
                config = tmp / name / "config.json"
                config.write_text(json.dumps(dict(json.loads(config.read_text()), dtype="float32"), indent=2) + "\n")
    (tmp / "README.md").write_text(readme)
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder
