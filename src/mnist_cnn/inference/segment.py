"""Finding the separate digits of a number in an ink image: connected components plus measured rules.

Input is `preprocess.find_ink`'s image (white ink on black, noise and specks already at
0); output is one `Segment` per digit, left to right, each holding only its own ink. The
rules and their constants were chosen by measurement on numbers composed from MNIST
*training* digits (`benchmarks/read_numbers.py --tune`; the table is in
benchmarks/README.md, "Reading numbers"), never on the test digits the goals are scored on:

1. label the ink's 8-connected components (scipy.ndimage);
2. drop specks: components with under SPECK_SHARE of the largest one's ink;
3. merge parts of one digit: components whose column ranges overlap by at least
   MERGE_OVERLAP of the narrower one's width (the dot over an i-like 1, a stroke broken
   by a light pen, a 5's bar written straight above), repeated until nothing changes;
4. attach fragments: a group shorter than FRAGMENT_HEIGHT of the median height (a 5's top
   bar written apart and leaning right, sharing no column with the body), or with less ink
   than FRAGMENT_MASS of the median group's (broken bits of a stroke stacked as tall as a
   digit; MNIST's training 1s hold 0.57 of a median digit's ink, the thinnest 1 in 100
   0.29, and only a near one is at risk), joins its nearest neighbour within ATTACH_GAP
   median heights;
5. drop what is still small: groups under SMALL_SHARE of the largest group's ink (a stray
   mark is not a digit, while the smallest real digit, a 1, is far above it);
6. split touching digits: a group wider than SPLIT_CANDIDATE median heights is cut at the
   columns of least ink into 1..N pieces, and the model (`judge`) picks the count whose
   pieces it reads with the highest mean log-confidence, less SPLIT_PENALTY per extra
   piece. A single digit is read with high confidence as a whole while touching digits
   are not, so the model's confidence tells them apart far better than width alone; the
   penalty keeps a label-smoothed model (`strong`), whose confidences lie close
   together, from splitting single digits, at some cost on touching ones (measurements:
   benchmarks/README.md, "Reading numbers"). Without a judge nothing is split.

With a touching-digit reader (`touching.py`; the shipped `mnist` model has one), step 6
changes: a group wider than READER_CANDIDATE median heights (a 1 is narrower; two touching
1s are not, though they may be narrower than half a digit's height) is read whole by the
reader, which says how many digits it holds and where each one lies; the ink is cut at the
column of least ink between neighbouring digits' centres, and each piece keeps the reader's
answer (`Segment.read_as`). A group the reader reads as one digit (or none) stays whole
for the digit model. Cuts through overlapping digits are only for boxes and images: the
digits themselves come from the reader, which saw the group uncut.

A number of APART_GROUPS groups or more is written apart, and there a wide group is more
often one broad digit than two touching ones (a 4 whose stroke the reader takes for a 1):
a group no wider than WHOLE_WIDTH median heights that the digit model reads whole with
WHOLE_CONFIDENCE stays whole and is not shown to the reader at all (most digits of a
number written apart are such groups), and the reader's doubtful splits are overruled (two
digits, one below SPLIT_DOUBT, of a group the digit model reads whole with DOUBT_WHOLE are
one digit). In a number of fewer groups every wide group is the reader's: a 1 touching its
neighbour is often read surely as that neighbour alone. Measured on numbers of MNIST
*training* digits (2026-12-07, three seeds, benchmarks/README.md "A number written apart"):
the apart rules read 0.15-0.2 points more numbers apart, touching ones the same to 5 in
8,000, and WHOLE_WIDTH 1.1 (0.9 before) spared the reader enough groups to save 0.5-0.7 ms
a number apart; asking the reader about every wide group of a number of one or two groups
read 0.25 points more touching numbers (20 in 8,000) for 1 apart, and READER_CANDIDATE 0.3
(0.5 before) 0.2 points more (16 in 8,000: touching 1s) for 1 apart.

NumPy and SciPy (a scikit-learn dependency) only; nothing runs at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

SPECK_SHARE = 0.02  # components with less ink than this share of the largest are specks
MERGE_OVERLAP = 0.5  # column overlap (share of the narrower width) that makes two parts one digit
SMALL_SHARE = 0.08  # groups with less ink than this share of the largest are not digits
CUT_WINDOW = 0.3  # a cut is sought within this share of one digit's width of its expected column
FRAGMENT_HEIGHT = 0.5  # groups shorter than this share of the median height are parts of a digit ...
FRAGMENT_MASS = 0.3  # ... as are groups with less ink than this share of the median group's ...
ATTACH_GAP = 0.3  # ... joined to the nearest group if at most this share of the median height away
SPLIT_CANDIDATE = 1.1  # with a judge: groups wider than this many median heights may be touching digits ...
MIN_DIGIT_ASPECT = 0.45  # ... of at most width / (this * height) digits (and at most MAX_PIECES)
MAX_PIECES = 4
SPLIT_PENALTY = 0.1  # per extra piece, the pieces' mean log-confidence must beat the whole's by this

READER_CANDIDATE = 0.3  # with a reader: groups wider than this many median heights are read by it ...
APART_GROUPS = 3  # ... but in a number of at least this many groups (written apart) ...
WHOLE_WIDTH = 1.1  # ... one no wider than this many median heights ...
WHOLE_CONFIDENCE = 0.9  # ... that the digit model reads this surely stays whole, and ...
SPLIT_DOUBT = 0.9  # ... a group the reader reads as two digits, one of them below this probability, ...
DOUBT_WHOLE = 0.8  # ... stays one digit if the digit model reads it whole this surely

# Scores candidate digit images: each an ink crop (float (h, w)), -> (n,) confidences in (0, 1].
Judge = Callable[[list[np.ndarray]], np.ndarray]
# Reads groups of touching digits: each an ink crop (float (h, w)) -> its digits, left to
# right, as (digit, probability, centre column in the crop's pixels).
Reader = Callable[[list[np.ndarray]], list[list[tuple[int, float, float]]]]


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value
class Segment:
    """One digit's ink, cut out of the whole image."""

    box: tuple[int, int, int, int]  # (left, top, right, bottom) in ink-image pixels; right, bottom exclusive
    ink: np.ndarray  # float32 (bottom - top, right - left): this digit's ink only, others' set to 0
    read_as: tuple[int, float] | None = None  # (digit, probability) when the touching-digit reader read it


@dataclass
class _Group:
    labels: list[int]  # component labels (1-based) making up this group
    top: int
    bottom: int  # exclusive
    left: int
    right: int  # exclusive
    mass: float  # total ink

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def absorb(self, other: "_Group") -> None:
        self.labels += other.labels
        self.top, self.bottom = min(self.top, other.top), max(self.bottom, other.bottom)
        self.left, self.right = min(self.left, other.left), max(self.right, other.right)
        self.mass += other.mass


def _components(ink: np.ndarray) -> tuple[np.ndarray, list[_Group]]:
    from scipy import ndimage  # SciPy is slow to import: only when a number is read

    labels, count = ndimage.label(ink > 0, structure=np.ones((3, 3), dtype=bool))  # 8-connected
    # The ink of each label in one pass: the sums ndimage.sum_labels gives, in 132 against 224 us
    # on a number's ink (200 test numbers, timeit, one Intel core; printed).
    masses = np.bincount(labels.ravel(), weights=ink.ravel(), minlength=count + 1)[1:]
    groups = [_Group([i + 1], rows.start, rows.stop, cols.start, cols.stop, float(masses[i]))
              for i, (rows, cols) in enumerate(ndimage.find_objects(labels))]
    return labels, groups


def _of_group(labels: np.ndarray, members: list[int]) -> np.ndarray:
    """Where `labels` is one of `members`: most groups are one component, for which a comparison
    costs a fifth of np.isin (4 against 20 us on a digit's box; printed)."""
    return labels == members[0] if len(members) == 1 else np.isin(labels, members)


def _overlap(a: _Group, b: _Group) -> float:
    """Shared columns of a and b as a share of the narrower one's width."""
    shared = min(a.right, b.right) - max(a.left, b.left)
    return max(shared, 0) / min(a.width, b.width)


def _merge_overlapping(groups: list[_Group]) -> list[_Group]:
    merged = True
    while merged:  # a merge widens a group, which may then overlap another
        merged = False
        groups.sort(key=lambda g: g.left)
        for i, a in enumerate(groups):
            for b in groups[i + 1:]:
                if _overlap(a, b) >= MERGE_OVERLAP:
                    a.absorb(b)
                    groups.remove(b)
                    merged = True
                    break
            if merged:
                break
    return groups


def _cut_columns(profile: np.ndarray, pieces: int) -> list[int]:
    """Columns (into `profile`) at which to cut a group holding `pieces` touching digits."""
    width = len(profile)
    step = width / pieces
    window = max(1, round(CUT_WINDOW * step))
    cuts = []
    for k in range(1, pieces):
        expected = round(k * step)
        low, high = max(1, expected - window), min(width - 1, expected + window + 1)
        if high > low:  # a group a few pixels wide has no room for this cut
            cuts.append(low + int(np.argmin(profile[low:high])))  # least ink: where the digits touch
    return sorted(set(cuts))


def _attach_fragments(groups: list[_Group]) -> list[_Group]:
    """Join each fragment (a group much shorter than a digit) to its nearest neighbour, if near.

    A 5's top bar written apart and leaning right need not share a column with the body,
    and a broken stroke may sit beside its digit; but it is short, which a whole digit,
    even a 1, is not.
    """
    digit_height = float(np.median([g.height for g in groups]))
    digit_mass = float(np.median([g.mass for g in groups]))
    changed = True
    while changed and len(groups) > 1:
        changed = False
        for fragment in sorted(groups, key=lambda g: g.mass):
            if fragment.height >= FRAGMENT_HEIGHT * digit_height and fragment.mass >= FRAGMENT_MASS * digit_mass:
                continue
            others = [g for g in groups if g is not fragment]
            gaps = [max(g.left, fragment.left) - min(g.right, fragment.right) for g in others]
            nearest = int(np.argmin(gaps))
            if gaps[nearest] <= ATTACH_GAP * digit_height:
                others[nearest].absorb(fragment)
                groups = others
                changed = True
                break
    return groups


def segment_digits(ink: np.ndarray, judge: Judge | None = None, reader: Reader | None = None) -> list[Segment]:
    """An ink image (float (H, W), white on black, 0 = no ink) -> one Segment per digit, left to right.

    `reader` (optional) reads groups of touching digits whole (see `Reader`); else `judge`
    (optional) scores candidate cuts of them (see `Judge`); without either, touching digits
    stay one segment. [] when there is no ink.
    """
    ink = np.asarray(ink, dtype=np.float32)
    labels, groups = _components(ink)
    if not groups:
        return []
    largest = max(g.mass for g in groups)
    groups = [g for g in groups if g.mass >= SPECK_SHARE * largest]
    groups = _attach_fragments(_merge_overlapping(groups))
    largest = max(g.mass for g in groups)
    groups = [g for g in groups if g.mass >= SMALL_SHARE * largest]
    digit_height = float(np.median([g.height for g in groups]))

    groups.sort(key=lambda g: g.left)
    owns = [np.where(_of_group(labels[g.top:g.bottom, g.left:g.right], g.labels),
                     ink[g.top:g.bottom, g.left:g.right], 0.0).astype(np.float32) for g in groups]
    wide = [i for i, g in enumerate(groups) if reader is not None and g.width > READER_CANDIDATE * digit_height]
    # In a number written apart, a group no wider than WHOLE_WIDTH that the digit model reads whole
    # with WHOLE_CONFIDENCE stays whole whatever the reader would say (a broad single digit), so it
    # is judged first and the reader is spared it: most digits of such a number never reach it.
    apart = len(groups) >= APART_GROUPS
    narrow = [i for i in wide if groups[i].width <= WHOLE_WIDTH * digit_height] if apart else []
    if narrow and judge is not None:
        sure = {i for i, whole in zip(narrow, judge([owns[i] for i in narrow]) >= WHOLE_CONFIDENCE) if whole}
        wide = [i for i in wide if i not in sure]
    readings = dict(zip(wide, reader([owns[i] for i in wide]))) if wide and reader is not None else {}
    if judge is not None and apart:
        readings = _overrule_doubtful_splits(readings, owns, judge)
    segments: list[Segment] = []
    for i, (group, own) in enumerate(zip(groups, owns)):
        if len(readings.get(i, [])) >= 2:
            pieces = _read_pieces(own, readings[i])
        else:
            pieces = [(*p, None) for p in _split(own, digit_height, judge if reader is None else None)]
        for left, top, piece, read_as in pieces:
            segments.append(Segment((group.left + left, group.top + top, group.left + left + piece.shape[1],
                                     group.top + top + piece.shape[0]), piece, read_as))
    return segments


def _overrule_doubtful_splits(readings: dict[int, list[tuple[int, float, float]]], owns: list[np.ndarray],
                              judge: Judge) -> dict[int, list[tuple[int, float, float]]]:
    """Readings without the doubtful splits of a number written apart: a group the reader reads as
    two digits, one of them below SPLIT_DOUBT, that the digit model reads whole with DOUBT_WHOLE
    is one wide digit (a 4 whose stroke the reader takes for a 1), not two touching ones.

    Where most of a number's digits stand apart, a wide group is more often one digit than two:
    of the groups in 6,000 numbers of MNIST *training* digits written apart and 6,000 touching
    (two seeds), this kept 27 single digits whole that the reader had split and the digit model
    then read right, and merged one touching pair (benchmarks/README.md, "A number written apart").
    """
    doubtful = [i for i, digits in readings.items()
                if len(digits) == 2 and min(probability for _, probability, _ in digits) < SPLIT_DOUBT]
    if not doubtful:
        return readings
    one_digit = {i for i, whole in zip(doubtful, judge([owns[i] for i in doubtful]) >= DOUBT_WHOLE) if whole}
    return {i: [] if i in one_digit else digits for i, digits in readings.items()}  # []: left whole


def _read_pieces(own: np.ndarray, digits: list[tuple[int, float, float]]
                 ) -> list[tuple[int, int, np.ndarray, tuple[int, float] | None]]:
    """A group the reader read as several digits -> one piece each, cut at least-ink columns.

    Each cut lies between two neighbouring digits' centres, in the middle half of the way
    (an overlapping neighbour's ink is deepest near its own centre). A piece with no ink
    of its own (digits overlapping all the way) spans its neighbours' centres instead.
    """
    profile = own.sum(axis=0)
    width = own.shape[1]
    centres = [min(max(round(c), 0), width - 1) for _, _, c in digits]
    edges = [0]
    for a, b in zip(centres[:-1], centres[1:]):
        low, high = a + (b - a) // 4, b - (b - a) // 4
        edges.append(low + int(np.argmin(profile[low:high + 1])) if high >= low else (a + b) // 2)
    edges.append(width)
    pieces = []
    for k, (digit, probability, _) in enumerate(digits):
        wider = (centres[k - 1] if k else 0, centres[k + 1] + 1 if k + 1 < len(centres) else width)
        for start, stop in ((edges[k], edges[k + 1]), wider, (0, width)):  # the first span with ink
            piece = own[:, start:stop]
            rows_inked, cols_inked = np.flatnonzero(piece.any(axis=1)), np.flatnonzero(piece.any(axis=0))
            if rows_inked.size:
                break
        top, bottom = int(rows_inked[0]), int(rows_inked[-1]) + 1
        left, right = int(cols_inked[0]), int(cols_inked[-1]) + 1
        pieces.append((start + left, top, piece[top:bottom, left:right], (digit, probability)))
    return pieces


def _pieces(own: np.ndarray, count: int) -> list[tuple[int, int, np.ndarray]]:
    """`own` cut into `count` pieces at least-ink columns: (left, top, ink cropped to its ink) each."""
    width = own.shape[1]
    edges = [0, *_cut_columns(own.sum(axis=0), count), width] if count > 1 else [0, width]
    pieces = []
    for start, stop in zip(edges[:-1], edges[1:]):
        piece = own[:, start:stop]
        rows_inked, cols_inked = np.flatnonzero(piece.any(axis=1)), np.flatnonzero(piece.any(axis=0))
        if rows_inked.size == 0:
            continue
        top, bottom = int(rows_inked[0]), int(rows_inked[-1]) + 1
        left, right = int(cols_inked[0]), int(cols_inked[-1]) + 1
        pieces.append((start + left, top, piece[top:bottom, left:right]))
    return pieces


def _split(own: np.ndarray, digit_height: float, judge: Judge | None) -> list[tuple[int, int, np.ndarray]]:
    """One group's ink -> its digits: itself, or pieces of it when it is touching digits."""
    width = own.shape[1]
    if judge is None or width <= SPLIT_CANDIDATE * digit_height:
        return _pieces(own, 1)
    most = max(2, min(MAX_PIECES, round(width / (MIN_DIGIT_ASPECT * digit_height))))
    best, best_score = _pieces(own, 1), -np.inf
    for count in range(1, most + 1):
        pieces = _pieces(own, count)
        scores = judge([piece for _, _, piece in pieces])
        score = float(np.mean(np.log(np.maximum(scores, 1e-9)))) - (count - 1) * SPLIT_PENALTY
        if score > best_score:
            best, best_score = pieces, score
    return best
