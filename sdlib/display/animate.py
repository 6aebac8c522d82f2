"""Inline animations with no ffmpeg: an animated GIF made by PIL, or matplotlib's JS player.

Why: watching x_t and x0_pred change step by step teaches more than any grid, but video encoders
are a setup hurdle (ffmpeg) and make notebooks heavy. A GIF of a dozen or two 64 px frames is
about a hundred KB even when every frame is noise, needs nothing but Pillow, and shows in
JupyterLab, VS Code and Colab (it also plays in a notebook that is not trusted, where the
JavaScript player would not run).

    frames = [[x_t_image, x0_image] for ...]          # per frame: panels side by side
    sdlib.animate.animate(frames, titles=[f"step {i}" for i in ...], labels=["x_t", "x0_pred"])

Shown in notebooks/04 (the denoising loop, step by step). Panels are converted by `images.load_image`.
"""
import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..checks import check_int, check_number
from ..errors import SDLibError
from ..images import load_image

GAP = 2  # pixels between panels
STRIP = 13  # pixels of caption strip per text line
MAX_SCALE = 8  # enlargement limit: 8 x 128 px = 1024 px a panel, about a screen
MAX_FPS = 50  # GIF delays count hundredths of a second; browsers slow faster GIFs down


def _font():
    try:
        return ImageFont.load_default(size=10)
    except TypeError:  # Pillow < 10.1: the small bitmap font
        return ImageFont.load_default()


def _check_list(name, values, n, what):
    """None, or a list/tuple of n captions (one per `what`); a lone string is a mistake."""
    if values is not None and (isinstance(values, str) or not isinstance(values, (list, tuple))):
        raise SDLibError(f"{name} must be None or a list of strings, one per {what}, got {values!r:.60}.")
    if values is not None and len(values) != n:
        raise SDLibError(f"{len(values)} {name} for {n} {what}s.")
    return values


def _check_frames(frames, titles, fps):
    """frames as a non-empty list (each a list of panels, or one image; a batch tensor
    (B, 3, H, W) is B one-image frames); titles and fps checked."""
    batch = hasattr(frames, "ndim") and frames.ndim == 4
    if not (batch or isinstance(frames, (list, tuple)) or hasattr(frames, "__next__")):
        raise SDLibError(f"frames must be a list of frames (each a list of panels, or one image), "
                         f"got {type(frames).__name__}.")
    frames = list(frames)
    if not frames:
        raise SDLibError("no frames to animate.")
    _check_list("titles", titles, len(frames), "frame")
    check_number("fps", fps, lo=0, hi=MAX_FPS, lo_open=True)
    return frames


def _compose_all(frames, titles, labels, scale):
    """Every frame composed (one RGB PIL each), all of one size."""
    images = [compose(f, None if titles is None else titles[i], labels, scale)
              for i, f in enumerate(frames)]
    if len({im.size for im in images}) > 1:
        raise SDLibError("frames differ in size: give every frame the same number of panels.")
    return images


def compose(panels, title=None, labels=None, scale=2, max_side=128):
    """One frame: panels side by side (each enlarged `scale` times, pixels kept sharp), with an
    optional title line and a line of per-panel labels above them. Panels larger than `max_side`
    (SD's 512 px) are first shrunk to it: an animation is for watching change, not detail.
    Used by animate; the trajectory it shows is taught in notebooks/04, section 4."""
    panels = panels if isinstance(panels, (list, tuple)) else [panels]
    if not panels:
        raise SDLibError("panels must hold at least one image, got an empty list.")
    panels = [load_image(p, name=f"panels[{k}]") for k, p in enumerate(panels)]
    if len({p.size for p in panels}) > 1:
        raise SDLibError(f"panels must all have one size, got {[p.size for p in panels]} (width, height).")
    _check_list("labels", labels, len(panels), "panel")
    scale = check_int("scale", scale, lo=1, hi=MAX_SCALE)
    max_side = check_int("max_side", max_side, lo=8)
    if max(panels[0].size) > max_side:
        k = max_side / max(panels[0].size)
        panels = [p.resize((round(p.width * k), round(p.height * k)), Image.LANCZOS) for p in panels]
    w, h = panels[0].width * scale, panels[0].height * scale
    n_lines = (title is not None) + (labels is not None)
    frame = Image.new("RGB", (len(panels) * (w + GAP) - GAP, h + n_lines * STRIP), "white")
    draw, font = ImageDraw.Draw(frame), _font()
    y = 0
    if title is not None:
        draw.text((2, y), str(title), fill="black", font=font)
        y += STRIP
    for k, p in enumerate(panels):
        x = k * (w + GAP)
        if labels is not None:
            draw.text((x + 2, y), str(labels[k]), fill="black", font=font)
        frame.paste(p.resize((w, h), Image.NEAREST), (x, n_lines * STRIP))
    return frame


def to_gif(frames, titles=None, labels=None, fps=4, scale=1, hold_last=4, colors=64):
    """Frames (each a list of panels, or one image) -> animated GIF bytes that loop forever.

    titles: one string per frame; labels: one string per panel; hold_last: extra frame times the
    last frame stays up, so the eye can rest on the result before the loop restarts.
    scale: pixels per image pixel (1 keeps files small; `animate` enlarges on screen instead);
    colors: palette size per frame (noisy x_t frames cost about one byte a pixel at 256).
    Used by animate; the trajectory it shows is taught in notebooks/04, section 4.
    """
    frames = _check_frames(frames, titles, fps)
    check_int("hold_last", hold_last, lo=0)
    check_int("colors", colors, lo=2, hi=256)
    images = [im.quantize(colors, dither=Image.Dither.NONE)
              for im in _compose_all(frames, titles, labels, scale)]
    ms = round(1000 / fps)
    durations = [ms] * (len(images) - 1) + [ms * (1 + hold_last)]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=durations, disposal=1)
    return buf.getvalue()


def to_jshtml(frames, titles=None, labels=None, fps=4, scale=2):
    """The same frames as matplotlib's JavaScript player (`FuncAnimation.to_jshtml`), as HTML text
    with play/step buttons; needs a trusted notebook to run its script.
    Used by animate; the trajectory it shows is taught in notebooks/04, section 4."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    frames = _check_frames(frames, titles, fps)
    arrays = [np.asarray(im) for im in _compose_all(frames, titles, labels, scale)]  # each (h, w, 3)
    h, w = arrays[0].shape[:2]
    fig = plt.figure(figsize=(w / 72, h / 72), dpi=72)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.axis("off")
    shown = ax.imshow(arrays[0], interpolation="nearest")
    anim = FuncAnimation(fig, lambda i: (shown.set_data(arrays[i]),), frames=len(arrays),
                         interval=1000 / fps)
    html = anim.to_jshtml(fps=fps, default_mode="loop")
    plt.close(fig)
    return html


def animate(frames, titles=None, labels=None, fps=4, zoom=2, format="gif", colors=64):
    """Show frames inline in a notebook: format "gif" (default; a small file shown `zoom` times
    larger on screen) or "jshtml" (a player, with the frames enlarged `zoom` times).
    Taught in notebooks/04, section 4."""
    from IPython.display import HTML
    from IPython.display import Image as IPImage

    zoom = check_int("zoom", zoom, lo=1, hi=MAX_SCALE)
    if format == "gif":
        data = to_gif(frames, titles, labels, fps, colors=colors)
        return IPImage(data=data, format="gif", width=Image.open(io.BytesIO(data)).width * zoom)
    if format == "jshtml":
        return HTML(to_jshtml(frames, titles, labels, fps, zoom))
    raise SDLibError(f"unknown animation format {format!r}: use 'gif' or 'jshtml'.")
