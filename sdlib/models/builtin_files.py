"""Where the built-in model lives: the library finds it here without importing the factory
(`sdlib.builtin`, which makes it). The tokenizer (which falls back to the shipped vocabulary) and
the factory's model module (which writes it) both read these names."""
import os
from pathlib import Path

from ..errors import SDLibError

NAME = "builtin"  # load_sd("builtin"), and the folder name under sdlib/models/
SHIPPED = Path(__file__).resolve().parent / NAME  # the trained model, in the package
VERSION = "v2"  # of the architecture; a random build is cached under this name


def cache_dir():
    """Where the factory writes a random built-in model and its by-products: $SDLIB_CACHE, else
    ~/.cache/sdlib. Used by load_sd; loading is taught in notebooks/00 (the load cell)."""
    root = os.environ.get("SDLIB_CACHE") or Path.home() / ".cache" / "sdlib"
    return Path(root) / f"{NAME}-random-{VERSION}"


def builtin_path():
    """The built-in model's folder: the trained model shipped in the package, else one the factory
    built into cache_dir() (`sdlib.builtin.model.build_builtin(sdlib.builtin.cache_dir())`).
    Used by load_sd; the built-in model is introduced in notebooks/00 (the load cell)."""
    for folder in (SHIPPED, cache_dir()):
        if (folder / "model_index.json").exists():
            return folder
    raise SDLibError(f"the built-in model is not in the package ({SHIPPED}) nor built in {cache_dir()}: "
                     "reinstall the course, or build a random one with "
                     "`python -c 'import sdlib.builtin as b; b.build_builtin(b.cache_dir())'`.")


def shipped_folder(folder, part, what, trainer, card):
    """`folder` (a model shipped beside the built-in one) if its `part`/config.json is there, else
    one SDLibError naming what is missing and the command that trains and exports it.
    Used by load_sd for "builtin-flow" (notebooks/10) and "builtin-sd3" (notebooks/11)."""
    if not (Path(folder) / part / "config.json").exists():
        raise SDLibError(f"the built-in {what} is not in the package ({folder}): train and export it "
                         f"with `python -m sdlib.builtin.{trainer}` ({card}).")
    return Path(folder)

