"""Loading and saving models without diffusers' and transformers' progress bars."""
import warnings
from contextlib import contextmanager


@contextmanager
def quiet_loading():
    """diffusers' and transformers' loading and saving without their progress bars (in a notebook
    each bar is a widget, for a few small files) and without huggingface_hub's deprecation note
    about an argument diffusers still passes; as they were afterwards. Used by load_sd and the
    twins; notebooks/11 loads an SDXL twin's pipeline inside it."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    was_on = tlog.is_progress_bar_enabled(), dlog.is_progress_bar_enabled()
    tlog.disable_progress_bar()
    dlog.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*")
            yield
    finally:
        if was_on[0]:
            tlog.enable_progress_bar()
        if was_on[1]:
            dlog.enable_progress_bar()
