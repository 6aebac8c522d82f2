"""A learner's mistakes in the core helpers (device, load, latents, metrics, text, embeddings,
unet_tools) end in one SDLibError that names the argument, never a traceback from torch.

Each row: what a learner might type, and the words its message must hold (the argument's name,
and what was given or what is allowed). Nothing here generates: the checks come first.
"""
import copy
import dataclasses
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

import sdlib
from sdlib import embeddings as E
from sdlib import latents as L
from sdlib import metrics as M
from sdlib import text as T
from sdlib import unet_tools as U

SHAPE_BTD = r"shape \(B, \d+, \d+\)"  # (B, 77, D) with this model's numbers


@pytest.fixture(scope="module")
def c(sd, tmp_path_factory):
    """The bundle, a fork whose tokenizer may change, and a few good inputs to spoil."""
    fork = dataclasses.replace(sd, tokenizer=copy.deepcopy(sd.tokenizer),
                               text_encoder=copy.deepcopy(sd.text_encoder))
    n_pos = T.max_tokens(sd.text_encoder)
    store = U.AttentionStore()
    store.add("down", torch.rand(4, 64, n_pos).softmax(-1), heads=4)  # batch 1, 4 heads, 8x8
    store.latent_size = (8, 8)
    vec = E.word_vector(sd, "red")
    tmp = tmp_path_factory.mktemp("bad_inputs")
    return SimpleNamespace(
        sd=sd, fork=fork, tok=sd.tokenizer, te=sd.text_encoder, D=T.text_width(sd.text_encoder),
        n_pos=n_pos, vec=vec, store=store, tmp=tmp,
        z=torch.randn(1, sd.vae.config.latent_channels, 8, 8, generator=torch.Generator().manual_seed(0)),
        img=Image.new("RGB", (sd.image_size, sd.image_size), "red"),
        x=torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1)),
        emb=sdlib.encode_text(sd, "a red circle"),
        ids=T.tokenize(sd.tokenizer, "a red circle").ids,
        file=E.save_embedding(tmp / "v.safetensors", "<v>", vec))


CASES = [
    # device, load
    ("pick_device gpu", lambda c: sdlib.pick_device("gpu"),
     r"unknown device 'gpu': device must be 'auto', 'cpu'"),
    ("pick_device int", lambda c: sdlib.pick_device(3), r"unknown device 3: device must be"),
    ("pick_dtype half16", lambda c: sdlib.pick_dtype("cpu", "half16"),
     r"unknown dtype 'half16': dtype must be .*'fp16'"),
    ("pick_dtype int64", lambda c: sdlib.pick_dtype("cpu", torch.int64),
     r"dtype must be .* torch float dtype"),
    ("pick_dtype device gpu", lambda c: sdlib.pick_dtype("gpu"), r"unknown device 'gpu'"),
    ("load_sd model int", lambda c: sdlib.load_sd(42),
     r"model must be None, 'builtin', a hub id .* got int"),
    ("load_sd device gpu", lambda c: sdlib.load_sd("builtin", device="gpu"), r"unknown device 'gpu'"),
    ("load_sd dtype half16", lambda c: sdlib.load_sd("builtin", device="cpu", dtype="half16"),
     r"unknown dtype 'half16'"),
    ("n_params of the bundle", lambda c: sdlib.n_params(c.sd),
     r"module must be a torch module .* got SD"),
    ("check_layout int", lambda c: sdlib.load.check_layout(3), r"folder must be a path .* got int"),
    ("hub_reachable timeout str", lambda c: sdlib.load.hub_reachable("3"),
     r"timeout must be a number > 0, got '3'"),
    ("default_model device gpu", lambda c: sdlib.load.default_model("gpu"), r"unknown device 'gpu'"),
    ("pipeline scheduler name", lambda c: c.sd.pipeline("ddim"), r"scheduler must be None .* got str"),
    # latents
    ("encode without the bundle", lambda c: sdlib.encode(c.img, c.img),
     r"sd must be the model bundle from sdlib.load_sd\(\) .* got Image"),
    ("encode 60x50", lambda c: sdlib.encode(c.sd, c.img.resize((60, 50))),
     r"image is 60x50 .* multiples of 8"),
    ("encode int", lambda c: sdlib.encode(c.sd, 42), r"images must be a path, a PIL image.* got int"),
    ("encode latents as images", lambda c: sdlib.encode(c.sd, c.z),
     r"images must be .*\(B, 3, H, W\), got \(1, 4, 8, 8\)"),
    ("encode 0..255", lambda c: sdlib.encode(c.sd, torch.full((1, 3, 64, 64), 200.0)),
     r"images must hold values in \[0, 1\], got values in \[200, 200\]"),
    ("encode -1..1", lambda c: sdlib.encode(c.sd, torch.linspace(-1, 1, 3 * 64 * 64).reshape(1, 3, 64, 64)),
     r"images must hold values in \[0, 1\], got values in \[-1, 1\]"),
    ("encode sample str", lambda c: sdlib.encode(c.sd, c.img, sample="yes"),
     r"sample must be True or False, got 'yes'"),
    ("encode generator int", lambda c: sdlib.encode(c.sd, c.img, sample=True, generator=0),
     r"generator must be None or a torch.Generator .* got 0"),
    ("decode 3 channels", lambda c: sdlib.decode(c.sd, torch.zeros(1, 3, 8, 8)),
     r"latents must be a float tensor \(B, 4, h, w\) of latents, got \(1, 3, 8, 8\)"),
    ("decode no batch axis", lambda c: sdlib.decode(c.sd, c.z[0]),
     r"latents must be .* got \(4, 8, 8\) float32; add the batch axis with latents\[None\]"),
    ("decode list", lambda c: sdlib.decode(c.sd, [1, 2]), r"latents must be a float tensor .* got list"),
    ("decode int tensor", lambda c: sdlib.decode(c.sd, c.z.long()),
     r"latents must be a float tensor .* int64"),
    ("decode grad str", lambda c: sdlib.decode(c.sd, c.z, grad="no"),
     r"grad must be True or False, got 'no'"),
    ("compression 60 high", lambda c: L.compression(c.sd, 60, 64), r"image is 64x60 .* multiples of 8"),
    ("compression height str", lambda c: L.compression(c.sd, "64", 64),
     r"height must be a whole number >= 1, got '64'"),
    ("compression width 0", lambda c: L.compression(c.sd, 64, 0),
     r"width must be a whole number >= 1, got 0"),
    ("lerp alpha str", lambda c: L.lerp(c.z, c.z, "half"), r"alpha must be a number, got 'half'"),
    ("slerp alpha None", lambda c: L.slerp(c.z, c.z, None), r"alpha must be a number, got None"),
    ("lerp two shapes", lambda c: L.lerp(c.z, torch.zeros(1, 4, 4, 4), 0.5),
     r"cannot blend latents of shapes .* z_a and z_b must have one shape"),
    ("slerp list", lambda c: L.slerp([1.0], c.z, 0.5), r"z_a must be a float tensor .* got list"),
    ("slerp eps 0", lambda c: L.slerp(c.z, c.z, 0.5, eps=0), r"eps must be a number > 0, got 0"),
    ("edit_channel 4", lambda c: L.edit_channel(c.z, 4), r"channel must be in 0..3 .* got 4"),
    ("edit_channel -1", lambda c: L.edit_channel(c.z, -1), r"channel must be in 0..3 .* got -1"),
    ("edit_channel 1.5", lambda c: L.edit_channel(c.z, 1.5), r"channel must be a whole number, got 1.5"),
    ("edit_channel scale str", lambda c: L.edit_channel(c.z, 0, scale="2"),
     r"scale must be a number, got '2'"),
    ("edit_channel shift nan", lambda c: L.edit_channel(c.z, 0, shift=float("nan")),
     r"shift must be a number, got nan"),
    ("edit_channel no batch axis", lambda c: L.edit_channel(c.z[0], 0),
     r"latents must be .* latents\[None\]"),
    # metrics
    ("psnr two sizes", lambda c: M.psnr(c.x, torch.rand(1, 3, 8, 8)),
     r"cannot compare images of shapes .* a and b must be one size"),
    ("psnr -1..1", lambda c: M.psnr(c.x * 2 - 1, c.x), r"a must hold values in \[0, 1\]"),
    ("mse 0..255", lambda c: M.mse(c.x, c.x * 255), r"b must hold values in \[0, 1\]"),
    ("mse int", lambda c: M.mse(c.x, 3), r"images must be a path, a PIL image.* got int"),
    ("error_map gain str", lambda c: M.error_map(c.x, c.x, gain="4"),
     r"gain must be a number > 0, got '4'"),
    ("error_image gain 0", lambda c: M.error_image(c.x, c.x, gain=0),
     r"gain must be a number > 0, got 0"),
    ("region_psnr boxes list", lambda c: M.region_psnr(c.x, c.x, [(0, 0, 8, 8)]),
     r"boxes must be a non-empty dict .* got list"),
    ("region_psnr 3 numbers", lambda c: M.region_psnr(c.x, c.x, {"a": (0, 0, 8)}),
     r"boxes\['a'\] must be 4 whole numbers .* got \(0, 0, 8\)"),
    ("region_psnr outside", lambda c: M.region_psnr(c.x, c.x, {"a": (0, 0, 17, 4)}),
     r"region 'a' box \(0, 0, 17, 4\) is outside the 16x16 image"),
    # text
    ("tokenize the bundle", lambda c: sdlib.tokenize(c.sd, "a"),
     r"tokenizer must be a CLIP tokenizer \(sd.tokenizer\), got SD"),
    ("tokenize []", lambda c: sdlib.tokenize(c.tok, []),
     r"prompts must be a string or a non-empty list of strings, got \[\]"),
    ("tokenize not strings", lambda c: sdlib.tokenize(c.tok, ["a", 3]),
     r"prompts must be a string or a non-empty list of strings, got \['a', 3\]"),
    ("tokenize None", lambda c: sdlib.tokenize(c.tok, None), r"prompts must be a string .* got None"),
    ("tokenize warn str", lambda c: sdlib.tokenize(c.tok, "a", warn="no"),
     r"warn must be True or False, got 'no'"),
    ("encode_text int", lambda c: sdlib.encode_text(c.sd, 42), r"prompts must be a string .* got 42"),
    ("encode_text tokenizer as sd", lambda c: sdlib.encode_text(c.tok, "a"),
     r"sd must be the model bundle .* got CLIPTokenizer"),
    ("token_embeddings float ids", lambda c: T.token_embeddings(c.te, c.ids.float()),
     r"ids must be an integer tensor of shape \(B, T\) .* float32"),
    ("token_embeddings Tokens", lambda c: T.token_embeddings(c.te, T.tokenize(c.tok, "a")),
     r"ids must be the id tensor, got the Tokens; use tokens.ids"),
    ("token_embeddings unknown ids", lambda c: T.token_embeddings(c.te, c.ids + 10**6),
     r"ids must hold token ids in 0\.\.\d+ .* got ids from"),
    ("embed 5 ids", lambda c: T.embed(c.te, c.ids[:, :5]),
     r"ids must be an integer tensor of shape \(B, \d+\) .* got \(1, 5\)"),
    ("position_embeddings tokenizer", lambda c: T.position_embeddings(c.tok),
     r"text_encoder must be a CLIP text model \(sd.text_encoder\), got CLIPTokenizer"),
    ("clip_text_model the bundle", lambda c: T.clip_text_model(c.sd),
     r"text_encoder must be a CLIP text model .* got SD"),
    ("embedding_layer int", lambda c: T.embedding_layer(3),
     r"text_encoder must be a CLIP text model .* got int"),
    ("causal_mask n 0", lambda c: T.causal_mask(0, torch.float32, "cpu"),
     r"n must be a whole number >= 1, got 0"),
    ("causal_mask int dtype", lambda c: T.causal_mask(5, torch.int64, "cpu"),
     r"unknown dtype torch.int64: dtype must be"),
    ("causal_mask device gpu", lambda c: T.causal_mask(5, torch.float32, "gpu"),
     r"unknown device 'gpu'"),
    ("encode_embeddings width D+1", lambda c: T.encode_embeddings(c.te, torch.zeros(1, c.n_pos, c.D + 1)),
     rf"input_embeds must be a float tensor of {SHAPE_BTD} \(\d+ = this text encoder's width\)"),
    ("encode_embeddings ids", lambda c: T.encode_embeddings(c.te, c.ids),
     r"input_embeds must be a float tensor .* int64"),
    ("encode_embeddings no batch axis", lambda c: T.encode_embeddings(c.te, c.emb[0]),
     r"input_embeds must be a float tensor .* got \(\d+, \d+\) float32"),
    ("nearest_tokens k 0", lambda c: T.nearest_tokens(c.tok, c.te, c.vec, k=0),
     r"k must be a whole number from 1 to \d+, got 0"),
    ("nearest_tokens vector (3,)", lambda c: T.nearest_tokens(c.tok, c.te, c.vec[:3]),
     r"vector must be a float tensor of shape \(\d+,\) .* got \(3,\)"),
    ("nearest_tokens swapped", lambda c: T.nearest_tokens(c.te, c.tok, c.vec),
     r"tokenizer must be a CLIP tokenizer .* got CLIPTextModel"),
    # embeddings
    ("word_id several tokens", lambda c: E.word_id(c.tok, "purpletriangle"),
     r"word 'purpletriangle' is \d+ CLIP tokens .* not one"),
    ("word_id ''", lambda c: E.word_id(c.tok, ""),
     r"word must be a word that is one CLIP token, such as 'red', got ''"),
    ("word_id int", lambda c: E.word_id(c.tok, 3), r"word must be a word .* got 3"),
    ("word_vector list", lambda c: E.word_vector(c.sd, ["red"]),
     r"word must be a word .* got \['red'\]"),
    ("input_embeddings []", lambda c: E.input_embeddings(c.sd, []),
     r"prompts must be a string or a non-empty list"),
    ("input_embeddings vectors list", lambda c: E.input_embeddings(c.sd, "a red circle", [c.vec]),
     r"vectors must be None or a dict .* got list"),
    ("input_embeddings vector (3,)", lambda c: E.input_embeddings(c.sd, "a red circle", {"red": c.vec[:3]}),
     r"vectors\['red'\] must be a float tensor of shape \(\d+,\) or \(B, \d+\)"),
    ("input_embeddings 3 rows, 2 prompts", lambda c: E.input_embeddings(c.sd, ["a red circle"] * 2, {"red": c.vec.expand(3, -1)}),
     r"vectors\['red'\] has 3 rows for 2 prompts"),
    ("edit_embeddings word not in prompt", lambda c: E.edit_embeddings(c.sd, "a red circle", {"blue": c.vec}),
     r"'blue' is not in every prompt"),
    ("edit_embeddings several-token key", lambda c: E.edit_embeddings(c.sd, "a red circle", {"purpletriangle": c.vec}),
     r"a word in vectors 'purpletriangle' is \d+ CLIP tokens"),
    ("replace_word other int", lambda c: E.replace_word(c.sd, "a red circle", "red", 3),
     r"other must be a one-token word or a vector \(D,\), got int"),
    ("replace_word other several tokens", lambda c: E.replace_word(c.sd, "a red circle", "red", "purpletriangle"),
     r"other 'purpletriangle' is \d+ CLIP tokens"),
    ("replace_word prompt list", lambda c: E.replace_word(c.sd, ["a red circle"], "red", "blue"),
     r"prompt must be one prompt \(a string\), got list"),
    ("mix_words weight []", lambda c: E.mix_words(c.sd, "a red circle", "red", "blue", []),
     r"weight must be a number or a non-empty list of numbers .* got \[\]"),
    ("mix_words weight str", lambda c: E.mix_words(c.sd, "a red circle", "red", "blue", "half"),
     r"weight must be a number or a non-empty list .* got 'half'"),
    ("mix_words weight [0, '1']", lambda c: E.mix_words(c.sd, "a red circle", "red", "blue", [0, "1"]),
     r"weight must be a number, got '1'"),
    ("mix_words other several tokens", lambda c: E.mix_words(c.sd, "a red circle", "red", "purpletriangle", 0.5),
     r"other 'purpletriangle' is \d+ CLIP tokens"),
    ("mix_prompts prompt_b None", lambda c: E.mix_prompts(c.sd, "a red circle", None, 0.5),
     r"prompt_b must be one prompt \(a string\), got NoneType"),
    ("mix_prompts weight nan", lambda c: E.mix_prompts(c.sd, "a", "b", float("nan")),
     r"weight must be a number, got nan"),
    ("generate_from_embeddings width D+1", lambda c: E.generate_from_embeddings(c.sd, torch.zeros(1, c.n_pos, c.D + 1), num_steps=1),
     rf"text_emb must be a float tensor of {SHAPE_BTD} .* got \(1, \d+, \d+\)"),
    ("generate_from_embeddings no batch axis", lambda c: E.generate_from_embeddings(c.sd, c.emb[0], num_steps=1),
     r"text_emb must be a float tensor of shape"),
    ("generate_from_embeddings 2 uncond rows", lambda c: E.generate_from_embeddings(c.sd, c.emb, uncond_emb=c.emb.expand(2, -1, -1), num_steps=1),
     r"uncond_emb must be None or one row .* got 2 rows"),
    ("generate_from_embeddings seed str", lambda c: E.generate_from_embeddings(c.sd, c.emb, seed="0", num_steps=1),
     r"seed must be a whole number from 0 to 2\*\*64 - 1, got '0'"),
    ("generate_from_embeddings num_steps 0", lambda c: E.generate_from_embeddings(c.sd, c.emb, num_steps=0),
     r"num_steps must be a whole number from 1 to \d+, got 0"),
    ("add_token twice", lambda c: [E.add_token(c.fork, "<twice>", c.vec) for _ in range(2)],
     r"token '<twice>' is already in the tokenizer"),
    ("add_token a known word", lambda c: E.add_token(c.fork, "cat", c.vec),
     r"token 'cat' is already in the tokenizer"),
    ("add_token blank", lambda c: E.add_token(c.fork, " ", c.vec),
     r"token must be a new name .* got ' '"),
    ("add_token vector (3,)", lambda c: E.add_token(c.fork, "<w>", c.vec[:3]),
     r"vector must be a float tensor of shape \(\d+,\) .* got \(3,\)"),
    ("add_token vector list", lambda c: E.add_token(c.fork, "<w>", [0.0] * c.D),
     r"vector must be a float tensor .* got list"),
    ("save_embedding .bin", lambda c: E.save_embedding(c.tmp / "v.bin", "<v>", c.vec),
     r"path must end in .safetensors .* got 'v.bin'"),
    ("save_embedding two vectors", lambda c: E.save_embedding(c.tmp / "w.safetensors", "<v>", torch.stack([c.vec, c.vec])),
     r"vector must be one float vector of shape \(D,\) or \(1, D\), got \(2, \d+\)"),
    ("save_embedding token int", lambda c: E.save_embedding(c.tmp / "w.safetensors", 3, c.vec),
     r"token must be the name .* got 3"),
    ("load_embedding int", lambda c: E.load_embedding(3), r"path must be a file path .* got int"),
    ("load_embedding missing file", lambda c: E.load_embedding(c.tmp / "none.safetensors"),
     r"path must be an existing .safetensors embedding file, got 'none.safetensors'"),
    ("load_textual_inversion token int", lambda c: E.load_textual_inversion(c.fork, c.file, token=3),
     r"token must be None \(the file's own\) or a string, got int"),
    ("denoising_loss t 10**6", lambda c: E.denoising_loss(c.sd, c.z, c.emb, 10**6, torch.randn_like(c.z)),
     r"t must be a whole number from 0 to \d+, got 1000000"),
    ("denoising_loss t float tensor", lambda c: E.denoising_loss(c.sd, c.z, c.emb, torch.tensor([0.5]), torch.randn_like(c.z)),
     r"t must be a timestep in 0\.\.\d+ or an integer tensor \(1,\) .* float32"),
    ("denoising_loss noise shape", lambda c: E.denoising_loss(c.sd, c.z, c.emb, 10, torch.randn(1, 4, 4, 4)),
     r"noise must have the shape of x0 \(1, 4, 8, 8\), got \(1, 4, 4, 4\)"),
    ("denoising_loss x0 3 channels", lambda c: E.denoising_loss(c.sd, torch.zeros(1, 3, 8, 8), c.emb, 10, torch.zeros(1, 3, 8, 8)),
     r"x0 must be a float tensor \(B, 4, h, w\) of latents, got \(1, 3, 8, 8\)"),
    ("denoising_loss text_emb width D+1", lambda c: E.denoising_loss(c.sd, c.z, torch.zeros(1, c.n_pos, c.D + 1), 10, torch.randn_like(c.z)),
     r"text_emb must be a float tensor of shape \(B, 77, \d+\) .*got .*\(1, \d+, \d+\)"),
    ("learn_embedding caption without {}", lambda c: E.learn_embedding(c.sd, [c.img], ["a red circle"], "circle", steps=1),
     r"captions must be templates with \{\} .* got 'a red circle' \(captions\[0\]\)"),
    ("learn_embedding 2 images, 1 caption", lambda c: E.learn_embedding(c.sd, [c.img, c.img], ["a {}"], "circle", steps=1),
     r"captions must hold one template per image: 2 images, got 1 captions"),
    ("learn_embedding init_word several tokens", lambda c: E.learn_embedding(c.sd, [c.img], ["a {}"], "purpletriangle", steps=1),
     r"init_word 'purpletriangle' is \d+ CLIP tokens"),
    ("learn_embedding steps 0", lambda c: E.learn_embedding(c.sd, [c.img], ["a {}"], "circle", steps=0),
     r"steps must be a whole number >= 1, got 0"),
    ("learn_embedding lr -1", lambda c: E.learn_embedding(c.sd, [c.img], ["a {}"], "circle", steps=1, lr=-1),
     r"lr must be a number > 0, got -1"),
    ("learn_embedding batch_size 0", lambda c: E.learn_embedding(c.sd, [c.img], ["a {}"], "circle", steps=1, batch_size=0),
     r"batch_size must be a whole number >= 1, got 0"),
    ("learn_embedding seed str", lambda c: E.learn_embedding(c.sd, [c.img], ["a {}"], "circle", steps=1, seed="0"),
     r"seed must be a whole number from 0 to 2\*\*64 - 1, got '0'"),
    ("eval_loss n 0", lambda c: E.eval_loss(c.sd, [c.img], ["a {}"], "circle", n=0),
     r"n must be a whole number >= 1, got 0"),
    ("eval_loss vector (3,)", lambda c: E.eval_loss(c.sd, [c.img], ["a {}"], "circle", c.vec[:3], n=1),
     r"vector must be a float tensor of shape \(\d+,\)"),
    ("eval_loss captions [3]", lambda c: E.eval_loss(c.sd, [c.img], [3], "circle", n=1),
     r"captions must be a string or a non-empty list of strings, got \[3\]"),
    ("default_lr tokenizer as sd", lambda c: E.default_lr(c.tok),
     r"sd must be the model bundle .* got CLIPTokenizer"),
    ("nearest_words k 0", lambda c: E.nearest_words(c.sd, c.vec, k=0),
     r"k must be a whole number from 1 to \d+, got 0"),
    ("nearest_words k -1 among words", lambda c: E.nearest_words(c.sd, c.vec, k=-1, words=["red"]),
     r"k must be a whole number >= 1, got -1"),
    ("nearest_words words []", lambda c: E.nearest_words(c.sd, c.vec, words=[]),
     r"words must be a string or a non-empty list of strings, got \[\]"),
    ("nearest_words every word excluded", lambda c: E.nearest_words(c.sd, c.vec, words=["red"], exclude=["red"]),
     r"words must hold at least one word that is not in exclude"),
    ("nearest_words vector (3,)", lambda c: E.nearest_words(c.sd, c.vec[:3]),
     r"vector must be a float tensor of shape \(\d+,\) .* got \(3,\)"),
    ("nearest_words exclude int", lambda c: E.nearest_words(c.sd, c.vec, exclude=3),
     r"exclude must be a string or a non-empty list of strings, got 3"),
    # unet_tools
    ("blocks batch 0", lambda c: U.blocks(c.sd, batch=0), r"batch must be a whole number >= 1, got 0"),
    ("blocks of the unet", lambda c: U.blocks(c.sd.unet),
     r"sd must be the model bundle .* got UNet2DConditionModel"),
    ("format_blocks str", lambda c: U.format_blocks("rows"),
     r"rows must be the list that unet_tools.blocks\(sd\) returns, got str"),
    ("format_blocks total str", lambda c: U.format_blocks(U.blocks(c.sd), total="all"),
     r"total must be None or the UNet's parameter count.* got 'all'"),
    ("cross_attention_layers of the bundle", lambda c: U.cross_attention_layers(c.sd),
     r"unet must be a diffusers UNet \(sd.unet\), got SD"),
    ("capture_cross_attention store dict", lambda c: U.capture_cross_attention(c.sd, store={}).__enter__(),
     r"store must be None \(a new one\) or an AttentionStore, got dict"),
    ("AttentionStore.add heads 0", lambda c: U.AttentionStore().add("a", torch.rand(4, 64, c.n_pos), heads=0),
     r"heads must be a whole number >= 1, got 0"),
    ("AttentionStore.add 2-d probs", lambda c: U.AttentionStore().add("a", torch.rand(64, c.n_pos), heads=4),
     r"probs must be a tensor \(batch \* heads, h\*w, tokens\) .* got \(64, \d+\)"),
    ("maps size 12 for 8x8 latents", lambda c: c.store.maps(12),
     r"size must be the latent size of the run, \(8, 8\), or a whole multiple of it .* got 12"),
    ("maps size str", lambda c: c.store.maps("8"),
     r"size must be the latent size of the run, a whole number >= 1 or \(h, w\), got '8'"),
    ("maps index 5 for batch 1", lambda c: c.store.maps(8, index=5),
     r"index must be a whole number from -1 to 0, got 5"),
    ("maps layers int", lambda c: c.store.maps(8, layers=3),
     r"layers must be a string or a non-empty list of strings, got 3"),
    ("maps layers no match", lambda c: c.store.maps(8, layers=["zzz"]),
     r"no recorded layer matches \['zzz'\]"),
]


@pytest.mark.parametrize("call, match", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_one_clear_error(c, call, match):
    with pytest.raises(sdlib.SDLibError, match=match):
        call(c)


def test_cuda_on_a_machine_without_one():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(sdlib.SDLibError, match=r"device 'cuda' was asked for but this torch sees no CUDA GPU"):
        sdlib.pick_device("cuda")


def test_the_forms_a_learner_may_use_are_accepted(c):
    """The checks refuse mistakes, not the other reasonable spellings of a right answer."""
    assert sdlib.pick_device(torch.device("cpu")) == sdlib.pick_device(" CPU ") == torch.device("cpu")
    assert sdlib.pick_dtype("cpu", "FP16") == torch.float16
    as_list = E.mix_words(c.sd, "a red circle", "red", "blue", [0.0, 1.0])
    assert torch.equal(E.mix_words(c.sd, "a red circle", "red", "blue", torch.tensor([0.0, 1.0])), as_list)
    assert E.nearest_words(c.sd, c.vec, k=1, exclude="red</w>")[0][0] != "red</w>"
    assert c.store.maps(16, layers="down").shape == (c.n_pos, 16, 16)  # a multiple, one layer name
    assert T.text_width(c.te) == c.sd.unet.config.cross_attention_dim == c.emb.shape[-1]
