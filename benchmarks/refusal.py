""""Not a digit": what a calibrated model refuses of MNIST *test* digits and of things that are not digits.

    mnist-cnn calibrate MODEL --data-dir DIR            # first: acceptance.json beside the model
    python benchmarks/refusal.py MODEL --data-dir DIR   # the goals, the curve, the per-letter table
    python benchmarks/refusal.py MODEL --data-dir DIR --compare-rules   # why this rule (Keras models)

Scores what a user gets (the stored rule and the checks every digit model applies,
`Predictor.acceptance_of`) on data its calibration never saw: MNIST's and Fashion-MNIST's
*test* splits, and blank, noise, scribble and letter images made with other seeds than the
calibration's. Digits are sent as people send them as well as raw: enlarged from 28x28 to
84x84 (dark ink on light paper, bilinear), and "as written" (rescaled, slanted, on grainy
paper, as `mnist_cnn.data.compose` draws the digits of numbers). Letters that look like digits
(REPORT_DIGIT_LIKE) are left out of the letters' share and listed per letter. Goals
(GOALS): <= 1% of MNIST test digits refused, raw and enlarged; >= 99% of Fashion-MNIST
test images; >= 99.9% of blank, noise and inverted noise images (the preprocessing
finds the paper's side either way: light-on-dark input must not slip through). The curve sweeps the
threshold: share of test digits wrongly refused against the share of each kind of
negative refused, for the stored rule and for two simpler ones (maximum softmax
probability, the margin alone). `--compare-rules` fits the candidate rules this package
chose among (energy, Mahalanobis distances on the penultimate layer, pixel reconstruction
error, ...) the same way, each thresholded at 1% of validation digits. Writes
`results/refusal-<time>.{json,png}`.
"""
from __future__ import annotations

import argparse
import json
import string
import sys
from pathlib import Path

import numpy as np

from mnist_cnn.data.load import load_dataset
from mnist_cnn.inference import acceptance
from mnist_cnn.inference.predict import Predictor
from mnist_cnn.refusal import negatives
from mnist_cnn.refusal.forms import enlarged, written_digits
from common import RESULTS, model_record, write_result

SEED = 1  # generated negatives: not the calibration's seed (0)
# (set, "<=" or ">=", share refused): digits accepted as sent, things refused.
GOALS = [("mnist test", "<=", 0.01), ("mnist test enlarged to 84 px", "<=", 0.01),
         ("fashion-mnist test", ">=", 0.99), ("blank", ">=", 0.999), ("noise", ">=", 0.999),
         ("noise inverted", ">=", 0.999)]
# Letters a digit reader cannot be asked to refuse: ours (negatives.DIGIT_LIKE_LETTERS) and I B g.
REPORT_DIGIT_LIKE = "".join(sorted(set(negatives.DIGIT_LIKE_LETTERS) | set("OlISZBgq")))


def blank_images(count: int, seed: int = SEED) -> list[np.ndarray]:
    """Nothing written: white, grey, black or a smooth gradient, at the sizes the generators use."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        side = int(rng.choice(negatives.SIDES))
        if i % 4 == 3:
            ramp = np.linspace(rng.uniform(0, 255), rng.uniform(0, 255), side)
            images.append(np.tile(ramp, (side, 1)).astype(np.uint8))
        else:
            images.append(np.full((side, side), (255, int(rng.integers(60, 200)), 0)[i % 4], np.uint8))
    return images


def inputs_and_probabilities(predictor: Predictor, sources) -> tuple[np.ndarray, np.ndarray, int]:
    """Preprocessed images (N, 28, 28), their probabilities, and how many were blank (refused unread)."""
    from mnist_cnn.refusal.calibrate import run_model

    return run_model(predictor, sources)


def refused_share(scores: np.ndarray, threshold: float, blank: int) -> float:
    return float(((scores < threshold).sum() + blank) / (len(scores) + blank))


def curve(digit_scores: np.ndarray, sets: dict[str, tuple[np.ndarray, int]], points: int = 200) -> list[dict]:
    """Thresholds at quantiles of the digits' scores: (digits refused, each set refused)."""
    rows = []
    for q in np.linspace(0.0, 0.2, points):
        threshold = float(np.quantile(digit_scores, q))
        rows.append({"threshold": threshold, "digits_refused": float((digit_scores < threshold).mean()),
                     **{name: refused_share(s, threshold, blank) for name, (s, blank) in sets.items()}})
    return rows


def plot(curves: dict[str, list[dict]], out: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 5), layout="constrained")
    ax = fig.subplots()
    styles = {"stored rule": "-", "margin alone": "--", "max softmax probability": ":"}
    colours = {"fashion-mnist test": "C0", "noise": "C1", "scribbles": "C2", "letters": "C3"}
    for rule, rows in curves.items():
        for name, colour in colours.items():
            if rule != "stored rule" and name != "fashion-mnist test":
                continue  # simpler rules: Fashion-MNIST only, to keep the plot readable
            ax.plot([100 * r["digits_refused"] for r in rows], [100 * r[name] for r in rows], styles[rule],
                    color=colour, label=f"{name} ({rule})")
    goal = {name: share for name, _, share in GOALS}
    ax.axvline(100 * goal["mnist test"], color="grey", lw=0.8)
    ax.axhline(100 * goal["fashion-mnist test"], color="grey", lw=0.8)
    ax.set(xlabel="MNIST test digits wrongly refused (%)", ylabel="negatives refused (%)", xlim=(0, 5), ylim=(0, 100),
           title="\"Not a digit\": refusals as the threshold moves")
    ax.legend(fontsize=8, loc="lower right")
    fig.savefig(out, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--compare-rules", action="store_true", help="also fit and score the candidate rules")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    predictor = Predictor.from_path(args.model)
    rule = predictor.acceptance
    if rule is None:
        sys.exit(f"{args.model} is not calibrated: run `mnist-cnn calibrate {args.model}` first")
    mnist, fashion = load_dataset("mnist", args.data_dir), load_dataset("fashion-mnist", args.data_dir)
    letters = negatives.letter_images(negatives.find_fonts(), string.ascii_letters, seed=SEED)
    sources = {"mnist test": mnist.test_images, "mnist test enlarged to 84 px": enlarged(mnist.test_images),
               "mnist test as written": written_digits(mnist.test_images, 3000, SEED),
               "fashion-mnist test": fashion.test_images,
               "blank": blank_images(400), "noise": negatives.noise_images(2000, SEED),
               "noise inverted": [255 - image for image in negatives.noise_images(2000, SEED)],
               "scribbles": negatives.scribble_images(2000, SEED),
               "letters": [image for letter, image in letters if letter not in REPORT_DIGIT_LIKE]}
    measured = {name: inputs_and_probabilities(predictor, images) for name, images in sources.items()}
    report: dict = {"model": str(args.model), "rule": rule.to_json(), "refused": {}, "goals": {},
                    "letters_left_out": REPORT_DIGIT_LIKE}
    for name, (images, probabilities, blank) in measured.items():
        refused = sum(not v.accepted for v in predictor.acceptance_of(images, probabilities)) if len(images) else 0
        share = (refused + blank) / (len(images) + blank)
        report["refused"][name] = {"share": share, "images": len(images) + blank, "blank": blank}
        print(f"{name:28} {share:7.2%} refused of {len(images) + blank} ({blank} blank)")
    for name, sense, goal in GOALS:
        share = report["refused"][name]["share"]
        report["goals"][f"{name} refused {sense} {goal:.1%}"] = share <= goal if sense == "<=" else share >= goal
    print(json.dumps(report["goals"], indent=1))

    letter_images, letter_probabilities, _ = inputs_and_probabilities(predictor, [im for _, im in letters])
    letter_scores = predictor.acceptance_scores(letter_images, letter_probabilities)
    names = np.array([c for c, _ in letters])
    report["per_letter_refused"] = {c: float((letter_scores[names == c] < rule.threshold).mean())
                                    for c in string.ascii_letters}
    print("letters refused:", " ".join(f"{c}:{v:.0%}" for c, v in sorted(report["per_letter_refused"].items(),
                                                                          key=lambda kv: kv[1])))

    digits = measured["mnist test"]
    rules = {"stored rule": predictor.acceptance_scores,
             "margin alone": lambda im, p: acceptance.features(im, p)[:, 0],
             "max softmax probability": lambda im, p: p.max(axis=1)}
    curves = {}
    for label, score in rules.items():
        digit_scores = score(digits[0], digits[1])
        curves[label] = curve(digit_scores, {name: (score(im, p), blank) for name, (im, p, blank) in measured.items()
                                             if not name.startswith("mnist test")})
    report["curves"] = curves
    if args.compare_rules:
        from compare_rules import compare  # noqa: PLC0415  (Keras internals: only when asked)

        report["compare_rules"] = compare(args.model, args.data_dir, measured)
    path = write_result("refusal", {**model_record(args.model), **report}, args.out)
    plot(curves, path.with_suffix(".png"))
    print(f"wrote {path} and {path.with_suffix('.png').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
