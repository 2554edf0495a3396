"""Reading numbers: how many whole numbers composed from MNIST digits `read_number` gets exactly right.

    python benchmarks/read_numbers.py mnist --data-dir DIR              # the goals: MNIST *test* digits
    python benchmarks/read_numbers.py mnist --data-dir DIR --threads 1  # ... and the one-core time per number
    python benchmarks/read_numbers.py mnist --data-dir DIR --no-reader  # touching digits split by the model alone
    python benchmarks/read_numbers.py mnist --data-dir DIR --tune       # the segmentation grid: *train* digits
    python benchmarks/read_numbers.py mnist --data-dir DIR --tune --together WHOLE_CONFIDENCE,WHOLE_WIDTH
    python benchmarks/read_numbers.py MODEL --data-dir DIR --split-evidence   # touching or one wide digit?
    python benchmarks/read_numbers.py mnist --data-dir DIR --against NEW/reader.keras  # a candidate reader vs the shipped

Numbers are laid out by `mnist_cnn.data.compose` (random heights, gaps, slants and
baselines). Two sets of 1,000 each: numbers of 2-6 digits that do not touch (goal: >= 98%
read exactly) and numbers of 2-4 digits with touching or overlapping neighbours (goal:
>= 97%). A model with a touching-digit reader beside it (`reader.keras`; the shipped
`mnist` has one) reads touching groups with it; `--reader`/`--no-reader` choose. `--tune`
scores settings of `segment`'s constants on numbers made from MNIST *training* digits, so
that the constants are never chosen on the digits the goals are scored on. Prints a table
and writes `results/read-numbers-<time>.json` with the model's and the reader's digests.
`--against` reads the same numbers with a second reader as well and says whether the two
differ by more than chance (an exact McNemar test on the numbers one reads and the other
does not): the test a candidate reader must pass before it replaces the shipped one.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

from common import RESULTS, model_record, portable_path, write_result

from mnist_cnn.data.compose import GAP, TOUCHING_GAP, Composed, random_numbers
from mnist_cnn.core.errors import MnistCnnError
from mnist_cnn.core.hashing import sha256_file
from mnist_cnn.data.load import load_dataset
from mnist_cnn.inference import segment
from mnist_cnn.inference.numbers import read_number
from mnist_cnn.inference.predict import Predictor
from mnist_cnn.inference.shipped import resolve_model

# The grid --tune walks: each constant's candidates (the others at their defaults).
GRID = {
    "MERGE_OVERLAP": [0.3, 0.5, 0.7],
    "FRAGMENT_HEIGHT": [0.35, 0.5, 0.65],
    "FRAGMENT_MASS": [0.0, 0.2, 0.3, 0.4],
    "ATTACH_GAP": [0.1, 0.3, 0.5],
    "SMALL_SHARE": [0.04, 0.08, 0.15],
    "SPLIT_CANDIDATE": [0.9, 1.1, 1.3],
    "SPLIT_PENALTY": [0.0, 0.1, 0.3, 0.6, 1.0],
    "READER_CANDIDATE": [0.0, 0.3, 0.5, 0.9],
    "WHOLE_WIDTH": [0.9, 1.1, 1.3],
    "WHOLE_CONFIDENCE": [0.7, 0.8, 0.9, 1.01],
    "APART_GROUPS": [2, 3, 4, 99],
    "SPLIT_DOUBT": [0.8, 0.9, 0.95],
    "DOUBT_WHOLE": [0.5, 0.8, 0.9],
}


def numbers_of(images: np.ndarray, labels: np.ndarray, count: int, seed: int, touching: bool) -> list[Composed]:
    """`count` numbers whose neighbours do (touching) or do not touch, made from `images`."""
    found: list[Composed] = []
    batch = 0
    while len(found) < count:
        made = random_numbers(images, labels, count, seed + 1000 * batch, lengths=(2, 4) if touching else (2, 6),
                              gap=TOUCHING_GAP if touching else GAP)
        found += [n for n in made if n.touching == touching]
        batch += 1
    return found[:count]


def score(predictor: Predictor, numbers: list[Composed], right: list[bool] | None = None) -> dict:
    """How well `predictor` reads `numbers`; `right`, if given, gets whether each was read exactly."""
    exact, count_right, digits_right, digits_total, accepted = 0, 0, 0, 0, 0
    by_length: dict[int, list[int]] = {}
    start = time.perf_counter()
    for number in numbers:
        truth = "".join(str(d) for d in number.labels)
        reading = read_number(predictor, number.image)
        exact += reading.text == truth
        if right is not None:
            right.append(reading.text == truth)
        accepted += reading.accepted
        by_length.setdefault(len(truth), [0, 0])
        by_length[len(truth)][0] += reading.text == truth
        by_length[len(truth)][1] += 1
        if len(reading.digits) == len(truth):
            count_right += 1
            digits_right += sum(d.class_name == t for d, t in zip(reading.digits, truth))
            digits_total += len(truth)
    n = len(numbers)
    return {"numbers": n, "exact": exact / n, "digit_count_right": count_right / n,
            "digits_right_where_count_right": digits_right / max(1, digits_total), "all_digits_accepted": accepted / n,
            "exact_by_length": {k: round(v[0] / v[1], 4) for k, v in sorted(by_length.items())},
            "seconds_per_number": (time.perf_counter() - start) / n}


def mcnemar(first: list[bool], second: list[bool]) -> dict:
    """Exact McNemar test: of the numbers exactly one of two readers reads, is the split further
    from even than chance allows? (two-sided binomial p on the discordant pairs)"""
    from scipy.stats import binomtest

    only_first = sum(a and not b for a, b in zip(first, second))
    only_second = sum(b and not a for a, b in zip(first, second))
    discordant = only_first + only_second
    p = binomtest(only_first, discordant, 0.5).pvalue if discordant else 1.0
    return {"only_first_right": only_first, "only_second_right": only_second, "p_value": float(p)}


def tune(predictor: Predictor, images: np.ndarray, labels: np.ndarray, count: int, seed: int,
         together: list[str] | None = None) -> list[dict]:
    """Score the GRID one constant at a time (the others at their defaults), or, with `together`,
    every combination of those constants' GRID values."""
    separate = numbers_of(images, labels, count, seed, touching=False)
    touching = numbers_of(images, labels, count // 2, seed + 7, touching=True)
    defaults = {name: getattr(segment, name) for name in GRID}
    rows = []
    if together:
        settings = [{**defaults, **dict(zip(together, values))}
                    for values in itertools.product(*(GRID[name] for name in together))]
    else:
        settings = [dict(defaults)] + [{**defaults, name: value} for name, values in GRID.items()
                                       for value in values if value != defaults[name]]
    for setting in settings:
        for name, value in setting.items():
            setattr(segment, name, value)
        row = {"setting": {k: v for k, v in setting.items() if v != defaults[k]} or "defaults",
               "separate_exact": score(predictor, separate)["exact"], "touching_exact": score(predictor, touching)["exact"]}
        print(f"{json.dumps(row['setting']):40} separate {row['separate_exact']:.3f}  touching "
              f"{row['touching_exact']:.3f}", flush=True)
        rows.append(row)
    for name, value in defaults.items():
        setattr(segment, name, value)
    return rows


def split_evidence(predictor: Predictor, images: np.ndarray, labels: np.ndarray, count: int, seed: int) -> dict:
    """For every group wider than 0.6 median heights: is it one digit or several, and what tells them apart?

    Records, per group, its true digit count, its width in median heights, the ink at the
    least-ink cut (share of the fullest column), the model's confidence in it whole, and the
    gain of cutting it in two (mean log-confidence of the pieces minus the whole's). Then
    counts, for rules "split when wider than A and gain > G", single digits split (wrong)
    and multi-digit groups split (right). This is what SPLIT_CANDIDATE and SPLIT_PENALTY rest on.
    """
    from mnist_cnn.data.imagefile import gray_from_array
    from mnist_cnn.inference.preprocess import find_ink, mnist_from_ink
    from mnist_cnn.inference.touching import strip_from_ink

    def confidence(crops: list[np.ndarray]) -> np.ndarray:
        return predictor.probabilities(np.stack([mnist_from_ink(c) for c in crops])).max(axis=1)

    def read(own: np.ndarray) -> list[list]:  # the touching-digit reader's digits, if the model has one
        if predictor.reader_file is None:
            return []
        return [[d.digit, round(float(d.probability), 4)] for d in predictor.read_strips(strip_from_ink(own)[0][None])[0]]

    rows = []
    for touching, share in ((False, 1.0), (True, 0.6)):
        for number in numbers_of(images, labels, int(count * share), seed + touching, touching):
            ink, _ = find_ink(gray_from_array(number.image))
            components, groups = segment._components(ink)
            largest = max(g.mass for g in groups)
            groups = segment._attach_fragments(segment._merge_overlapping(
                [g for g in groups if g.mass >= segment.SPECK_SHARE * largest]))
            largest = max(g.mass for g in groups)
            groups = [g for g in groups if g.mass >= segment.SMALL_SHARE * largest]
            height = float(np.median([g.height for g in groups]))
            centres = [(box[0] + box[2]) / 2 for box in number.boxes]
            for g in groups:
                if g.width <= min(0.6, segment.READER_CANDIDATE) * height:
                    continue
                own = np.where(np.isin(components[g.top:g.bottom, g.left:g.right], g.labels),
                               ink[g.top:g.bottom, g.left:g.right], 0.0).astype(np.float32)
                profile = own.sum(axis=0)
                whole = confidence([p for _, _, p in segment._pieces(own, 1)])[0]
                halves = confidence([p for _, _, p in segment._pieces(own, 2)])
                rows.append({"digits": sum(g.left <= c < g.right for c in centres), "width": g.width / height,
                             "cut_ink": float(profile[segment._cut_columns(profile, 2)[0]] / profile.max()),
                             "whole": float(whole), "gain": float(np.mean(np.log(halves)) - np.log(whole)),
                             "reader": read(own)})
    single = [r for r in rows if r["digits"] == 1]
    several = [r for r in rows if r["digits"] >= 2]
    rules = []
    for width in (0.9, 1.0, 1.1, 1.2, 1.3):
        for gain in (0.0, 0.1, 0.3, 0.6):
            rules.append({"wider_than": width, "gain_over": gain,
                          "singles_split": sum(r["width"] > width and r["gain"] > gain for r in single),
                          "several_split": sum(r["width"] > width and r["gain"] > gain for r in several)})
            print(f"split when wider than {width} and gain > {gain}: {rules[-1]['singles_split']} of {len(single)} "
                  f"single digits (wrong), {rules[-1]['several_split']} of {len(several)} touching groups (right)")
    reader_rules = _reader_rules(single, several) if predictor.reader_file is not None else []
    whole = np.array([r["whole"] for r in single])
    print(f"single digits read whole with >= 0.99 confidence: {np.mean(whole >= 0.99):.1%}; touching groups: "
          f"{np.mean(np.array([r['whole'] for r in several]) >= 0.99):.1%}")
    return {"groups": len(rows), "single": len(single), "several": len(several), "rules": rules,
            "reader_rules": reader_rules}


def _reader_rules(single: list[dict], several: list[dict]) -> list[dict]:
    """With a reader: single digits it splits (wrong) and touching groups left whole (wrong), under
    today's rule (the reader splits a group it reads as 2+ digits, unless the group is no wider
    than WHOLE_WIDTH and the digit model reads it whole with WHOLE_CONFIDENCE) and under that
    rule widened: also keep whole a group no wider than `width` that the model reads whole with
    `whole` while the reader's least sure digit is below `reader_below`."""
    def splits(row: dict, width: float = 0.0, whole: float = 2.0, reader_below: float = 0.0) -> bool:
        if len(row["reader"]) < 2:
            return False
        if row["width"] <= segment.WHOLE_WIDTH and row["whole"] >= segment.WHOLE_CONFIDENCE:
            return False
        return not (row["width"] <= width and row["whole"] >= whole
                    and min(p for _, p in row["reader"]) < reader_below)

    rules = [{"rule": "today"}]
    rules += [{"rule": "widened", "width": w, "whole": c, "reader_below": r}
              for w in (1.2, 1.3, 1.4) for c in (0.8, 0.85, 0.88) for r in (0.9, 0.95)]
    for rule in rules:
        limits = {k: v for k, v in rule.items() if k != "rule"}
        rule["singles_split"] = sum(splits(r, **limits) for r in single)
        rule["several_whole"] = sum(not splits(r, **limits) for r in several)
        print(f"reader, {json.dumps(limits) if limits else 'today'}: {rule['singles_split']} of {len(single)} single "
              f"digits split (wrong), {rule['several_whole']} of {len(several)} touching groups left whole (wrong)")
    return rules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--count", type=int, default=1000, help="numbers per set (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tune", action="store_true", help="score the segmentation grid on training digits")
    parser.add_argument("--together", metavar="NAME,NAME", type=lambda text: text.split(","),
                        help="with --tune: every combination of these constants' grid values instead of one at a time")
    parser.add_argument("--split-evidence", action="store_true",
                        help="what tells one wide digit from touching ones (training digits)")
    parser.add_argument("--reader", type=Path,
                        help="read touching digits with this reader.keras (default: the one beside the model, if any)")
    parser.add_argument("--no-reader", action="store_true", help="split touching digits by the model's judgement alone")
    parser.add_argument("--against", type=Path, metavar="READER",
                        help="also read the same numbers with this reader.keras and test the difference (McNemar)")
    parser.add_argument("--threads", type=int, help="TensorFlow threads (1: the one-core figure)")
    parser.add_argument("--runtime", default="keras", choices=("keras", "auto", "litert"),
                        help="what runs the models' calls: Keras as `predict` does (default), or as `serve` "
                             "does (auto: the parity-checked int8 or float LiteRT, the reader on LiteRT too)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.against and (args.tune or args.split_evidence or args.no_reader):
        parser.error("--against compares two readers on test numbers: leave out --tune, --split-evidence, --no-reader")
    if args.against and not args.against.is_file():
        parser.error(f"--against {args.against}: no such file (give a reader.keras that train-reader wrote)")

    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    predictor = Predictor.from_path(resolve_model(args.model))
    if args.no_reader or args.reader:
        predictor.reader_file = None if args.no_reader else args.reader
    if args.runtime != "keras":
        predictor.serve_with(args.runtime)
    other = None
    if args.against:
        other = Predictor.from_path(resolve_model(args.model))
        other.reader_file = args.against
        if args.runtime != "keras":
            other.serve_with(args.runtime)
        try:
            other.touching_reader()  # a file that is no reader fails here, in one line, not midway
        except MnistCnnError as e:
            parser.error(f"--against {args.against}: {e}")
    dataset = load_dataset("mnist", args.data_dir)
    reader = predictor.reader_file
    report: dict = {"model": str(args.model), "seed": args.seed, "count": args.count, "threads": args.threads,
                    "runtime": predictor.backend.runtime,
                    "reader": None if reader is None else {"file": portable_path(reader),
                                                           "sha256": sha256_file(reader)},
                    "segment": {name: getattr(segment, name) for name in GRID}}
    if other is not None:
        report["against"] = {"file": portable_path(args.against), "sha256": sha256_file(args.against)}
    if args.split_evidence:
        report["digits"] = "mnist train"
        report["split_evidence"] = split_evidence(predictor, dataset.train_images, dataset.train_labels, args.count,
                                                  args.seed)
    elif args.tune:
        report["digits"] = "mnist train"
        unknown = sorted(set(args.together or []) - set(GRID))
        if unknown:
            parser.error(f"--together {','.join(unknown)}: not in the grid ({', '.join(GRID)})")
        report["tuning"] = tune(predictor, dataset.train_images, dataset.train_labels, args.count, args.seed,
                                args.together)
    else:
        report["digits"] = "mnist test"
        for touching in (False, True):
            numbers = numbers_of(dataset.test_images, dataset.test_labels, args.count, args.seed, touching)
            right: list[bool] = []
            result = score(predictor, numbers, right)
            report["touching" if touching else "separate"] = result
            print(f"{'touching' if touching else 'not touching':13} {result['numbers']} numbers: "
                  f"{result['exact']:.2%} read exactly, digit count right {result['digit_count_right']:.2%}, "
                  f"digits right {result['digits_right_where_count_right']:.2%}, all digits accepted "
                  f"{result['all_digits_accepted']:.2%}; by length {result['exact_by_length']}", flush=True)
            if other is not None:
                other_right: list[bool] = []
                result["against"] = score(other, numbers, other_right)
                result["mcnemar"] = mcnemar(right, other_right)
                print(f"{'':13} --against: {result['against']['exact']:.2%} read exactly; only the first reader "
                      f"right on {result['mcnemar']['only_first_right']}, only --against on "
                      f"{result['mcnemar']['only_second_right']} (McNemar p = {result['mcnemar']['p_value']:.3g})",
                      flush=True)
    kind = "-split-evidence" if args.split_evidence else "-tune" if args.tune else "-against" if other else ""
    path = write_result("read-numbers", {**model_record(args.model), **report}, args.out, suffix=kind)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
