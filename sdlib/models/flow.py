"""The built-in flow-matching model: the built-in UNet fine-tuned with the rectified-flow objective
(`sdlib.processes.flow`), sampled by diffusers' `FlowMatchEulerDiscreteScheduler`.

Its folder (`FLOW_BUILTIN`, in the package) holds what differs from the built-in eps model, in the
diffusers layout: `unet/` and `scheduler/`; the tokenizer, text encoder and VAE are the built-in
model's (frozen while the UNet learned the new objective). `load_sd("builtin-flow")` puts the two
together. Trained by `python -m sdlib.builtin.train_flow` (training/flow-builtin.md); taught in
notebooks/10.
"""

from . import builtin_files

FLOW_NAME = "builtin-flow"  # load_sd("builtin-flow"), and the folder name under sdlib/models/
FLOW_BUILTIN = builtin_files.SHIPPED.parent / FLOW_NAME

# diffusers' flow scheduler, sigmas from 1 down and t = sigma * 1000, with the shift that brought 8
# steps closest to the model's own 100-step picture among 1, 2, 3, 4 and 6 (`evaluate_flow
# --shifts-only`, training/flow-builtin.md; swept in notebooks/10, section 5): 3, as SD3 uses at 1024 px.
FLOW_SCHEDULER_CONFIG = {
    "_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0,
    "use_dynamic_shifting": False,
}


def flow_folder():
    """The shipped flow model's folder; SDLibError when the package has none (a checkout before
    training). Used by load_sd; taught in notebooks/10."""
    return builtin_files.shipped_folder(FLOW_BUILTIN, "unet", "flow model", "train_flow", "training/flow-builtin.md")
