"""Draw `my_digit.png`: a stand-in for a photo of a hand-written 7 (dark ink, off-centre, on grey paper).

Run once to (re)make the sample the tutorial's chapter 8 reads; replace the PNG with a
photo of your own digit to see the same steps on it.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).with_name("my_digit.png")


def draw(width: int = 240, height: int = 200, seed: int = 7) -> Image.Image:
    rng = np.random.default_rng(seed)
    # Uneven paper: a light grey gradient with grain, like a phone photo of a page.
    paper = 200 + 30 * np.linspace(0, 1, width)[np.newaxis, :] + rng.normal(0, 4, (height, width))
    im = Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8)).convert("RGB")
    pen = ImageDraw.Draw(im)
    ink = (40, 45, 70)  # blue-black ballpoint
    pen.line([(100, 47), (170, 41), (175, 45)], fill=ink, width=8, joint="curve")  # top bar
    pen.line([(172, 47), (143, 107), (125, 167)], fill=ink, width=8, joint="curve")  # down stroke
    pen.line([(131, 103), (163, 100)], fill=ink, width=6)  # the European cross bar
    return im.filter(ImageFilter.GaussianBlur(1.2))


if __name__ == "__main__":
    draw().save(OUT, optimize=True)
    print(f"written {OUT} ({OUT.stat().st_size} bytes)")
