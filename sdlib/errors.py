"""One exception type for every mistake a learner can make.

Learners should read one clear line that says what went wrong and what to do, not a traceback
from deep inside torch. Every check in sdlib raises `SDLibError` with such a line.
"""


class SDLibError(ValueError):
    """A bad input or an unavailable resource, explained in one line.
    Shown in notebooks/01, section 2 (a size the VAE cannot take)."""


class PromptTruncatedWarning(UserWarning):
    """A prompt was longer than CLIP's 77 positions; the message says what was cut.
    Raised by tokenize; truncation is taught in notebooks/03, section 1."""
