"""Inline animations with no ffmpeg: an animated GIF made by PIL, or matplotlib's JS player.

Why: watching x_t and x0_pred change step by step teaches more than any grid, but video encoders
are a setup hurdle (ffmpeg) and make notebooks heavy. A GIF of a dozen or two 64 px frames is
about a hundred KB even when every frame is noise, needs nothing but Pillow, and shows in
JupyterLab, VS Code and Colab (it also plays in a notebook that is not trusted, where the
JavaScript player would not run).

    frames = [[x_t_image, x0_image] for ...]          # per frame: panels side by side
    sdlib.animate.animate(frames, titles=[f"step {i}" for i in ...], labels=["x_t", "x0_pred"])
"""
import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import SDLibError
from .images import load_image, to_pil

GAP = 2  # pixels between panels
STRIP = 13  # pixels of caption strip per text line


def _panel(img):
    """PIL image, uint8/float array, or (3, H, W) / (1, 3, H, W) tensor in [0, 1] -> RGB PIL."""
    if hasattr(img, "detach"):
        return to_pil(img[0] if img.ndim == 4 else img)[0]
    return load_image(img)


def _font():
    try:
        return ImageFont.load_default(size=10)
    except TypeError:  # Pillow < 10.1: the small bitmap font
        return ImageFont.load_default()


def compose(panels, title=None, labels=None, scale=2, max_side=128):
    """One frame: panels side by side (each enlarged `scale` times, pixels kept sharp), with an
    optional title line and a line of per-panel labels above them. Panels larger than `max_side`
    (SD's 512 px) are first shrunk to it: an animation is for watching change, not detail."""
    panels = [_panel(p) for p in (panels if isinstance(panels, (list, tuple)) else [panels])]
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
    """
    frames = list(frames)
    if not frames:
        raise SDLibError("no frames to animate.")
    if titles is not None and len(titles) != len(frames):
        raise SDLibError(f"{len(titles)} titles for {len(frames)} frames.")
    images = [compose(f, None if titles is None else titles[i], labels, scale)
              .quantize(colors, dither=Image.Dither.NONE) for i, f in enumerate(frames)]
    if len({im.size for im in images}) > 1:
        raise SDLibError("frames differ in size: give every frame the same number of panels.")
    ms = round(1000 / fps)
    durations = [ms] * (len(images) - 1) + [ms * (1 + hold_last)]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=durations, disposal=1)
    return buf.getvalue()


def to_jshtml(frames, titles=None, labels=None, fps=4, scale=2):
    """The same frames as matplotlib's JavaScript player (`FuncAnimation.to_jshtml`), as HTML text
    with play/step buttons; needs a trusted notebook to run its script."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    arrays = [np.asarray(compose(f, None if titles is None else titles[i], labels, scale))
              for i, f in enumerate(frames)]
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
    larger on screen) or "jshtml" (a player, with the frames enlarged `zoom` times)."""
    from IPython.display import HTML
    from IPython.display import Image as IPImage

    if format == "gif":
        data = to_gif(frames, titles, labels, fps, colors=colors)
        return IPImage(data=data, format="gif", width=Image.open(io.BytesIO(data)).width * zoom)
    if format == "jshtml":
        return HTML(to_jshtml(frames, titles, labels, fps, zoom))
    raise SDLibError(f"unknown animation format {format!r}: use 'gif' or 'jshtml'.")
