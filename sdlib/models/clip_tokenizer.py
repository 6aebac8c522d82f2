"""The real CLIP BPE tokenizer of Stable Diffusion v1, built offline.

SD v1 uses OpenAI CLIP ViT-L/14's tokenizer: 49,408 entries (256 bytes, the same with an
end-of-word mark, 48,894 merges, then <|startoftext|> = 49406 and <|endoftext|> = 49407).
open_clip ships that BPE merge list (`bpe_simple_vocab_16e6.txt.gz`), so we can rebuild the exact
vocabulary with no download, write it as `vocab.json` + `merges.txt`, and load it with
`CLIPTokenizer.from_pretrained` like any hub tokenizer. The built-in model ships that folder.
"""
import gzip
import json
from pathlib import Path

from .builtin_files import SHIPPED

VOCAB_SIZE = 49408
MAX_LENGTH = 77
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
BOS_ID, EOS_ID = VOCAB_SIZE - 2, VOCAB_SIZE - 1  # the two special tokens come last: 49406, 49407


def bytes_to_unicode():
    """CLIP's map from the 256 byte values to printable unicode characters (as in GPT-2).
    Used to rebuild the tokenizer; tokenizing is taught in notebooks/03, section 1."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def bpe_merges_file():
    """Path of the merge list that open_clip ships (the same file as OpenAI's CLIP).
    Used to rebuild the tokenizer; tokenizing is taught in notebooks/03, section 1."""
    import open_clip.tokenizer as oct  # only needed to locate the file

    return Path(oct.__file__).with_name("bpe_simple_vocab_16e6.txt.gz")


def clip_vocab_and_merges(bpe_path=None):
    """Rebuild CLIP's vocabulary exactly as OpenAI's `SimpleTokenizer` does (where open_clip is
    missing, as on a bare GPU machine: read back the built-in model's shipped tokenizer folder).
    Used to rebuild the tokenizer; tokenizing is taught in notebooks/03, section 1."""
    if bpe_path is None:
        try:
            bpe_path = bpe_merges_file()
        except ImportError:
            shipped = SHIPPED / "tokenizer"
            merges = (shipped / "merges.txt").read_text(encoding="utf-8").split("\n")[1:]
            return (json.loads((shipped / "vocab.json").read_text(encoding="utf-8")),
                    [tuple(m.split()) for m in merges if m])
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]
    tokens += [BOS, EOS]
    return {tok: i for i, tok in enumerate(tokens)}, merges


def save_clip_tokenizer(folder, bpe_path=None, pad_token=EOS):
    """Write a tokenizer folder (vocab.json, merges.txt, configs) that CLIPTokenizer loads.

    pad_token: SD v1 pads with <|endoftext|>; SD 2.x's OpenCLIP tokenizer pads with "!" (id 0).
    Used to rebuild the tokenizer; tokenizing is taught in notebooks/03, section 1."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = clip_vocab_and_merges(bpe_path)
    assert len(vocab) == VOCAB_SIZE, len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": pad_token}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = dict(special, model_max_length=MAX_LENGTH, do_lower_case=True,
                  tokenizer_class="CLIPTokenizer", clean_up_tokenization_spaces=False)
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return folder
