"""Draw `my_garment.png`: a stand-in for a phone photo of a T-shirt lying on a light floor.

No real photo ships with the repository (its pictures must be ours to publish), so the
tutorial's Fashion-MNIST chapter reads this drawing: a dark, textured T-shirt, off-centre,
on an unevenly lit background. Replace the PNG with a photo of your own garment to see the
same steps on it.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).with_name("my_garment.png")


def draw(width: int = 320, height: int = 280, seed: int = 3) -> Image.Image:
    rng = np.random.default_rng(seed)
    # A light floor, brighter towards the window on the left, with grain.
    floor = 225 - 35 * np.linspace(0, 1, width)[np.newaxis, :] + rng.normal(0, 5, (height, width))
    im = Image.fromarray(np.clip(floor, 0, 255).astype(np.uint8)).convert("RGB")
    pen = ImageDraw.Draw(im)
    cloth = (60, 70, 110)  # a navy cotton T-shirt
    body = [(118, 62), (150, 52), (186, 52), (218, 62),  # collar and shoulders
            (268, 98), (248, 138), (222, 120),  # right sleeve
            (224, 246), (112, 246),  # hem
            (114, 120), (88, 138), (68, 98)]  # left sleeve
    pen.polygon(body, fill=cloth)
    pen.arc([146, 38, 190, 76], start=20, end=160, fill=(200, 200, 210), width=4)  # the neckline
    for y in range(80, 240, 9):  # knit texture
        pen.line([(120, y), (216, y + 2)], fill=(70, 80, 122), width=2)
    return im.filter(ImageFilter.GaussianBlur(1.0))


if __name__ == "__main__":
    draw().save(OUT, optimize=True)
    print(f"written {OUT} ({OUT.stat().st_size} bytes)")
