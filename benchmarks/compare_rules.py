"""The candidate "not a digit" rules, fitted and scored alike: the measurement behind `acceptance`'s choice.

Used by `refusal.py --compare-rules` (a Keras model in a run folder: some rules need its
penultimate layer and logits, which an ONNX export does not give). Every rule is fitted
on the run's training-split digits (and, for the two-feature logistic rules, Fashion-MNIST
*training* images), thresholded to refuse 1% of the run's validation digits, then scored
on the test sets `refusal.py` made. Scores: higher = more digit-like.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnist_cnn.core.errors import EmptyImageError
from mnist_cnn.data.load import load_dataset
from mnist_cnn.inference import acceptance
from mnist_cnn.inference.preprocess import preprocess
from mnist_cnn.runs.run import Run

FIT = 5000  # training-split digits and Fashion-MNIST training images used for fitting
VALIDATION_REFUSED = 0.01


def _preprocessed(images: np.ndarray) -> tuple[np.ndarray, int]:
    out, blank = [], 0
    for image in images:
        try:
            out.append(preprocess(image))
        except EmptyImageError:
            blank += 1
    return np.stack(out), blank


def _gaussian(fit: np.ndarray, labels: np.ndarray):
    """Class means + one shared covariance (pseudo-inverse): score = -(smallest Mahalanobis distance)^2."""
    classes = np.unique(labels)
    means = np.stack([fit[labels == c].mean(axis=0) for c in classes])
    centred = fit - means[np.searchsorted(classes, labels)]
    precision = np.linalg.pinv(np.cov(centred.T))
    return lambda x: -np.min([np.einsum("ij,jk,ik->i", x - m, precision, x - m) for m in means], axis=0)


def compare(model_path: Path, data_dir: Path | None, measured: dict[str, tuple[np.ndarray, np.ndarray, int]]) -> dict:
    import keras
    from sklearn.decomposition import PCA

    from mnist_cnn.data.prepare import prepare_data

    run = Run.of_model(model_path)
    config = run.train_config()
    data = prepare_data(config, load_dataset(config.dataset, data_dir))
    pick = np.random.default_rng(0).permutation(len(data.x_train))[:FIT]
    train_labels = np.asarray(data.y_train)[pick]
    train_labels = train_labels.argmax(axis=1) if train_labels.ndim == 2 else train_labels
    fashion = load_dataset("fashion-mnist", data_dir).train_images
    sets = {"train": _preprocessed(np.round(data.x_train[pick, ..., 0] * 255)),
            "validation": _preprocessed(np.round(data.x_val[..., 0] * 255)),
            "fashion-mnist train": _preprocessed(fashion[np.random.default_rng(0).permutation(len(fashion))[:FIT]]),
            **{name: (images, blank) for name, (images, _, blank) in measured.items()}}

    model = keras.models.load_model(model_path)
    head = keras.Model(model.inputs, [model.layers[-1].input, model.outputs[0]])
    weights, bias = model.layers[-1].get_weights()
    found = {}
    for name, (images, blank) in sets.items():
        penultimate, probabilities = head.predict(images[..., None], batch_size=500, verbose=0)
        found[name] = {"images": images, "blank": blank, "penultimate": penultimate, "logits": penultimate @ weights + bias,
                       "probabilities": probabilities.astype(np.float64)}

    def logsumexp(z: np.ndarray) -> np.ndarray:
        top = z.max(axis=1, keepdims=True)
        return (top + np.log(np.exp(z - top).sum(axis=1, keepdims=True)))[:, 0]

    feats = {n: acceptance.features(f["images"], f["probabilities"]) for n, f in found.items()}
    rules = {
        "max softmax probability": lambda n: found[n]["probabilities"].max(axis=1),
        "energy (logsumexp of logits)": lambda n: logsumexp(found[n]["logits"]),
        "max logit": lambda n: found[n]["logits"].max(axis=1),
        "margin (max - mean log-probability)": lambda n: feats[n][:, 0],
        "coverage (lower is more digit-like)": lambda n: -feats[n][:, 1],
    }
    gaussian_logits = _gaussian(found["train"]["logits"], train_labels)
    rules["Mahalanobis on logits"] = lambda n: gaussian_logits(found[n]["logits"])
    width = found["train"]["penultimate"].shape[1]
    if width <= 256:  # small enough for one covariance over all of it (strong: 128 pooled channels)
        gaussian_full = _gaussian(found["train"]["penultimate"], train_labels)
        rules[f"Mahalanobis on penultimate layer (all {width})"] = lambda n: gaussian_full(found[n]["penultimate"])
    for k in (16, 64):
        pca = PCA(k, random_state=0).fit(found["train"]["penultimate"])
        gaussian = _gaussian(pca.transform(found["train"]["penultimate"]), train_labels)
        rules[f"Mahalanobis on penultimate layer (PCA {k})"] = \
            lambda n, pca=pca, g=gaussian: g(pca.transform(found[n]["penultimate"]))
    pixels = PCA(30, random_state=0).fit(found["train"]["images"].reshape(-1, 784))

    def reconstruction(n: str) -> np.ndarray:
        x = found[n]["images"].reshape(-1, 784)
        return -((x - pixels.inverse_transform(pixels.transform(x))) ** 2).sum(axis=1)

    rules["pixel PCA-30 reconstruction error"] = reconstruction
    fitted = acceptance.fit(feats["train"], feats["fashion-mnist train"], feats["validation"], VALIDATION_REFUSED)
    rules["logistic(margin, coverage, stroke): the stored rule"] = lambda n: fitted.scores(found[n]["images"],
                                                                                          found[n]["probabilities"])
    table = {}
    for label, score in rules.items():
        threshold = np.quantile(score("validation"), VALIDATION_REFUSED)
        table[label] = {n: refused_share(score(n), threshold, found[n]["blank"]) for n in found
                        if n not in ("train", "validation")}
        print(f"{label:55}" + "  ".join(f"{n} {v:6.1%}" for n, v in table[label].items()), flush=True)
    return table


def refused_share(scores: np.ndarray, threshold: float, blank: int) -> float:
    return float(((scores < threshold).sum() + blank) / (len(scores) + blank))
