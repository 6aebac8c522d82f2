"""Where the built-in model's files live in the package. Its own module, importing nothing of the
model code, so that the tokenizer (which falls back to the shipped vocabulary) and the model (which
writes it) both read it without importing each other."""
from pathlib import Path

NAME = "builtin"  # load_sd("builtin"), and the folder name under sdlib/models/
SHIPPED = Path(__file__).resolve().parent.parent / "models" / NAME  # the trained model, in the package
