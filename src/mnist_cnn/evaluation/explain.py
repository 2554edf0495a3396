"""What a trained CNN looks at: first-layer filters, feature maps, saliency, and one picture of them.

Pure functions over a Keras model and one preprocessed image, float32 (28, 28) or
(28, 28, 1) in [0, 1] (what `preprocess.preprocess` or `data.prepare.normalize` returns); the
figures use matplotlib's Figure API (no pyplot state). Chapter 9 of the tutorial and
`mnist-cnn explain` call the same functions. Importing it imports Keras (seconds), so the
CLI imports it inside its handler; nothing runs and no file is touched at import.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import keras
import numpy as np
from matplotlib.figure import Figure

from ..core.messages import DEFAULT_LANG, EN, class_labels, text
from .plots import save_figure  # the one figure saver; also public here as `explain.save_figure`

NO_CONV_MESSAGE = EN["no_conv"]  # the English text; figures take it from the message table
SMOOTHGRAD_SAMPLES = 16  # noisy copies averaged per saliency map (SmoothGrad); 1 = plain gradient
SMOOTHGRAD_NOISE = 0.1  # std of the added Gaussian noise, in pixel units ([0, 1] scale)
MAPS_PER_LAYER = 8  # feature maps shown per conv layer in the explain picture
# Layers that only rescale or gate a conv's output: the map worth showing is after them.
_FOLLOWERS = (keras.layers.BatchNormalization, keras.layers.ReLU, keras.layers.Activation)


def _as_batch(image: np.ndarray) -> np.ndarray:
    """(28, 28) or (28, 28, 1) -> float32 (1, 28, 28, 1)."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[..., np.newaxis]
    return image[np.newaxis]


def _inputs(model: keras.Model) -> Any:
    # A one-input model takes one tensor; passing the list makes Keras warn about structure.
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def _predict(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Class probabilities for a few images: a direct call, as `model.predict` builds (and, for
    each new batch size, retraces) a tf.function, slower than the work for one image."""
    return model(np.asarray(images, dtype=np.float32), training=False).numpy()


def conv_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's Conv2D layers, input side first."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def first_layer_filters(model: keras.Model) -> np.ndarray | None:
    """The first conv layer's kernels for the (only) input channel: (k, k, filters), or None."""
    convs = conv_layers(model)
    if not convs:
        return None
    kernel = np.asarray(convs[0].get_weights()[0])  # (k, k, in_channels, filters)
    return kernel[:, :, 0, :]


def _feature_layers(model: keras.Model) -> list[tuple[str, keras.layers.Layer]]:
    """Each conv layer's name with the layer whose output to show (after its BN/ReLU, if any)."""
    chosen = []
    layers = model.layers
    for i, layer in enumerate(layers):
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        j = i
        while j + 1 < len(layers) and isinstance(layers[j + 1], _FOLLOWERS):
            j += 1
        chosen.append((layer.name, layers[j]))
    return chosen


def feature_maps(model: keras.Model, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(conv layer name, activations (h, w, channels)) per conv layer for one image; [] without convs.

    The activation is taken after the batch norm and ReLU that follow a conv (as in the
    `compact` model), because that is what the next layer receives.
    """
    chosen = _feature_layers(model)
    if not chosen:
        return []
    probe = keras.Model(inputs=_inputs(model), outputs=[layer.output for _, layer in chosen])
    outputs = probe(_as_batch(image), training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [(name, out.numpy()[0]) for (name, _), out in zip(chosen, outputs)]


def _class_scores(model: keras.Model) -> Callable[[Any], Any]:
    """x -> per-class scores before the softmax when the model ends in a softmax Dense layer.

    Gradients of a saturated softmax probability (0.9999) are nearly zero everywhere; the
    pre-softmax score (logit) keeps a useful gradient. Other models fall back to log-probability.
    """
    last = model.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", "")
    if isinstance(last, keras.layers.Dense) and activation == "softmax":
        body = keras.Model(inputs=_inputs(model), outputs=last.input)

        def logits(x: Any) -> Any:
            out = keras.ops.matmul(body(x, training=False), last.kernel)
            return out + last.bias if last.use_bias else out

        return logits
    return lambda x: keras.ops.log(model(x, training=False) + 1e-12)


def saliency(model: keras.Model, image: np.ndarray, class_index: int, samples: int = SMOOTHGRAD_SAMPLES,
             noise: float = SMOOTHGRAD_NOISE, seed: int = 0) -> np.ndarray:
    """How much each pixel moves the score of `class_index`: float32 (28, 28) in [0, 1].

    SmoothGrad: the absolute gradient of the class score with respect to the input pixels,
    averaged over `samples` copies of the image with Gaussian noise (plain gradients of a
    ReLU network are speckled), then scaled so the largest value is 1.
    """
    import tensorflow as tf  # noqa: PLC0415  (the Keras backend; gradients need its tape)

    batch = _as_batch(image)
    rng = np.random.default_rng(seed)
    copies = np.repeat(batch, samples, axis=0)
    if samples > 1:
        copies = copies + rng.normal(0.0, noise, copies.shape).astype(np.float32)
    x = tf.convert_to_tensor(copies)
    scores_of = _class_scores(model)
    with tf.GradientTape() as tape:
        tape.watch(x)
        scores = scores_of(x)[:, class_index]
    gradients = tape.gradient(scores, x).numpy()  # (samples, 28, 28, 1)
    heat = np.abs(gradients).mean(axis=0)[..., 0]  # -> (28, 28)
    peak = float(heat.max())
    return (heat / peak if peak > 0 else heat).astype(np.float32)


# ---- pictures -------------------------------------------------------------------------------


def _grid_axes(fig: Figure, spec: Any, count: int, cols: int) -> list[Any]:
    rows = max(1, -(-count // cols))
    grid = spec.subgridspec(rows, cols, wspace=0.05, hspace=0.05)
    axes = [fig.add_subplot(grid[i // cols, i % cols]) for i in range(rows * cols)]
    for ax in axes:
        ax.axis("off")
    return axes[:count]


def _draw_maps(fig: Figure, spec: Any, activation: np.ndarray, max_channels: int, cols: int) -> tuple[Any, int]:
    """The first `max_channels` maps of one layer's activation in a grid; (first axes, maps shown)."""
    shown = min(max_channels, activation.shape[-1])
    axes = _grid_axes(fig, spec, shown, cols)
    for c, ax in enumerate(axes):
        ax.imshow(activation[:, :, c], cmap="viridis")
    return axes[0], shown


def plot_filters(filters: np.ndarray | None, cols: int = 8, lang: str = DEFAULT_LANG) -> Figure:
    """First-layer kernels (k, k, filters) as small images: red weights excite, blue inhibit."""
    fig = Figure(figsize=(cols * 0.9, 1.2))
    if filters is None:
        fig.text(0.5, 0.5, text("no_conv", lang), ha="center", va="center")
        return fig
    count = filters.shape[-1]
    fig.set_size_inches(cols * 0.9, max(1, -(-count // cols)) * 0.9 + 0.5)
    limit = float(np.abs(filters).max()) or 1.0
    for i, ax in enumerate(_grid_axes(fig, fig.add_gridspec(1, 1)[0], count, cols)):
        ax.imshow(filters[:, :, i], cmap="bwr", vmin=-limit, vmax=limit)
    fig.suptitle(text("filters_title", lang, count=count, height=filters.shape[0], width=filters.shape[1]))
    return fig


def plot_feature_maps(maps: Sequence[tuple[str, np.ndarray]], max_channels: int = 16, cols: int = 8,
                      lang: str = DEFAULT_LANG) -> Figure:
    """One block per conv layer: its first `max_channels` activation maps for one image."""
    fig = Figure(figsize=(cols * 1.0, 1.0))
    if not maps:
        fig.text(0.5, 0.5, text("no_conv", lang), ha="center", va="center")
        return fig
    heights = [max(1, -(-min(max_channels, m.shape[-1]) // cols)) for _, m in maps]
    fig.set_size_inches(cols * 1.0, sum(heights) * 1.05 + 0.4 * len(maps))
    outer = fig.add_gridspec(len(maps), 1, height_ratios=heights, hspace=0.35)
    for spec, (name, activation) in zip(outer, maps):
        first, shown = _draw_maps(fig, spec, activation, max_channels, cols)
        first.set_title(text("maps_title", lang, name=name, shown=shown, total=activation.shape[-1],
                             height=activation.shape[0], width=activation.shape[1]), loc="left", fontsize=9)
    return fig


def plot_saliency(model: keras.Model, images: np.ndarray, labels: Sequence[int],
                  class_names: Sequence[str], lang: str = DEFAULT_LANG) -> Figure:
    """Each image with its saliency for the predicted class overlaid; titles give true/predicted."""
    class_names = class_labels(class_names, lang)
    images = np.asarray(images, dtype=np.float32).reshape(-1, 28, 28)
    probabilities = _predict(model, images[..., np.newaxis])
    fig = Figure(figsize=(1.7 * len(images), 2.1))
    axes = np.atleast_1d(fig.subplots(1, len(images)))
    for ax, image, label, p in zip(axes, images, labels, probabilities):
        predicted = int(p.argmax())
        ax.imshow(image, cmap="gray")
        ax.imshow(saliency(model, image, predicted), cmap="inferno", alpha=0.55)
        mark = "" if predicted == int(label) else f" ({text('wrong', lang)})"
        ax.set_title(text("saliency_cell", lang, true=class_names[label], pred=class_names[predicted],
                          confidence=p[predicted], mark=mark), fontsize=8, color="black" if not mark else "crimson")
        ax.axis("off")
    fig.suptitle(text("saliency_title", lang), fontsize=9)
    return fig


def explain_figure(model: keras.Model, image: np.ndarray, class_names: Sequence[str],
                   title: str | None = None, lang: str = DEFAULT_LANG) -> Figure:
    """One picture: the input, class probabilities, saliency overlay, and feature maps per conv layer."""
    class_names = class_labels(class_names, lang)
    image = np.asarray(image, dtype=np.float32).reshape(28, 28)
    probabilities = _predict(model, _as_batch(image))[0]
    predicted = int(probabilities.argmax())
    maps = feature_maps(model, image)
    fig = Figure(figsize=(11, 3.2 + 1.6 * max(1, len(maps))))
    outer = fig.add_gridspec(2, 1, height_ratios=[3.0, 1.5 * max(1, len(maps))], hspace=0.25)
    top = outer[0].subgridspec(1, 3, width_ratios=[1, 1.6, 1], wspace=0.35)

    ax = fig.add_subplot(top[0])
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.set_title(text("input_seen", lang), fontsize=9)
    ax.axis("off")

    ax = fig.add_subplot(top[1])
    positions = np.arange(len(probabilities))
    bars = ax.bar(positions, probabilities, color="lightgray")
    bars[predicted].set_color("tab:blue")
    ax.set_xticks(positions, labels=class_names, rotation=45 if max(map(len, class_names)) > 2 else 0,
                  ha="right" if max(map(len, class_names)) > 2 else "center", fontsize=8)
    ax.set(ylim=(0, 1), ylabel=text("probability", lang))
    ax.set_title(text("prediction", lang, pred=class_names[predicted], confidence=probabilities[predicted]), fontsize=9)

    ax = fig.add_subplot(top[2])
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.imshow(saliency(model, image, predicted), cmap="inferno", alpha=0.55)
    ax.set_title(text("saliency_for", lang, pred=class_names[predicted]), fontsize=9)
    ax.axis("off")

    if maps:
        rows = outer[1].subgridspec(len(maps), 1, hspace=0.5)
        for spec, (name, activation) in zip(rows, maps):
            first, shown = _draw_maps(fig, spec, activation, MAPS_PER_LAYER, MAPS_PER_LAYER)
            first.set_title(text("maps_of", lang, name=name, shown=shown, total=activation.shape[-1],
                                 height=activation.shape[0], width=activation.shape[1]), loc="left", fontsize=9)
    else:
        ax = fig.add_subplot(outer[1])
        ax.axis("off")
        ax.text(0.5, 0.5, text("no_conv", lang), ha="center", va="center", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def explain(model_path: Path, out: Path, image: Path | None = None, test_index: int | None = None,
            dataset: str | None = None, *, data_dir: Path | None = None, lang: str = DEFAULT_LANG,
            **source: Any) -> Path:
    """`mnist-cnn explain` as a function: draw `explain_figure` for an image file or a test image.

    Exactly one of `image` (preprocessed as `predict` does, with the model's own recipe)
    and `test_index` (of `dataset`, default the model's run's, else mnist). Class names and
    preprocessing come from the model's run folder (`runs.Run.model_info`). Returns `out`.
    """
    from ..core.errors import MnistCnnError  # noqa: PLC0415
    from ..data.load import load_dataset
    from ..data.prepare import normalize  # noqa: PLC0415
    from ..inference.open_model import open_model  # noqa: PLC0415
    from ..inference.preprocess import preprocess  # noqa: PLC0415
    from ..runs.run import dataset_style  # noqa: PLC0415

    if (image is None) == (test_index is None):
        raise MnistCnnError("give either IMAGE or --test-index N (not both, not neither)")
    out = Path(out)
    if not out.parent.is_dir():
        raise MnistCnnError(f"folder {out.parent} does not exist; create it or pass another -o path")
    opened = open_model(model_path, rule=False, keras_only=True)
    model, info = opened.keras_model(), opened.info
    if opened.run is None and dataset is not None:  # a loose model: prepare images as its dataset's
        info = replace(info, style=dataset_style(dataset))
    class_names = list(info.class_names)
    if image is not None:  # the same steps and errors as `mnist-cnn predict`
        picture, title = preprocess(Path(image), style=info.style), Path(image).name
    else:
        data = load_dataset(opened.dataset(dataset), data_dir, **source)
        class_names = class_names or list(data.class_names)
        if not 0 <= test_index < len(data.test_labels):
            raise MnistCnnError(f"--test-index {test_index} is out of range: {data.name} has "
                                f"{len(data.test_labels)} test images (0..{len(data.test_labels) - 1})")
        picture = normalize(data.test_images[test_index: test_index + 1])[0]  # already MNIST-style
        title = text("test_image_title", lang, dataset=data.name, index=test_index,
                     true=data.class_names[data.test_labels[test_index]])
    if len(class_names) != model.output_shape[-1]:  # no run folder, or one for another dataset
        class_names = [str(i) for i in range(model.output_shape[-1])]
    return save_figure(explain_figure(model, picture, class_names, title=title, lang=lang), out)
