"""The report's plots, each drawn on its own figure with matplotlib's Agg canvas straight to a PNG file.

No pyplot: its global figure list and backend switch belong to whoever else runs in the process, and a report
never opens a window.
"""

import math

import numpy as np

from tfscissor.deploy.boxes import box_iou, valid_boxes

DPI = 110
MARKERS = "os^Dv<>Pp*"


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def accuracy_vs_macs(stages, path):
    """One point per stage that has both accuracy and MACs."""
    figure = _figure(7, 4.5)
    ax = figure.subplots()
    points = [s for s in stages if s.metrics["accuracy"] is not None and s.metrics["macs"] is not None]
    for index, stage in enumerate(points):
        ax.plot(
            stage.metrics["macs"] / 1e6,
            100 * stage.metrics["accuracy"],
            MARKERS[index % len(MARKERS)],
            markersize=9,
            alpha=0.8,
            label=stage.label,
        )
    ax.margins(0.15)
    ax.set_xlabel("MACs per image (millions)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Accuracy against compute, every model of the run")
    ax.grid(alpha=0.3)
    # A legend, not labels at the points: stages that share a graph (float and int8) sit on the same spot.
    ax.legend(fontsize=8)
    figure.savefig(path, dpi=DPI)


def channels_kept(layers, path, title):
    """Horizontal bars per layer: output channels before (grey) and kept (blue). ``layers``: trim.json's."""
    figure = _figure(7, 1.6 + 0.3 * len(layers))
    ax = figure.subplots()
    y = np.arange(len(layers))
    before = [layer["before"] for layer in layers]
    after = [layer["after"] for layer in layers]
    ax.barh(y, before, color="lightgrey", label="before")
    ax.barh(y, after, color="tab:blue", label="kept")
    for row, kept, total in zip(y, after, before, strict=True):
        ax.text(total, row, f" {kept}/{total}", va="center", fontsize=7)
    ax.set_yticks(y, [layer["layer"] for layer in layers], fontsize=7)
    ax.invert_yaxis()
    ax.margins(x=0.12)
    ax.set_xlabel("output channels")
    ax.set_title(title)
    figure.legend(loc="outside lower center", ncols=2, fontsize=8)
    figure.savefig(path, dpi=DPI)


def relevance_histograms(statistics, path, title):
    """A histogram per tapped layer of its channels' relevance: mean |output| over the layer's mean, the score
    of the ``relevance`` criterion at one tap. ``statistics``: a ``ChannelStatistics``."""
    from matplotlib.ticker import MaxNLocator

    names = list(statistics)
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    figure = _figure(3 * cols, 0.6 + 2.2 * rows)
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        mean = statistics[name].mean_magnitude
        layer_mean = mean.mean()
        ax.hist(mean / layer_mean if layer_mean > 0 else mean, bins=20, color="tab:blue")
        ax.set_title(f"{name}\n{len(mean)} channels, {int((mean == 0).sum())} dead", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    figure.supxlabel("relevance (channel's mean |output| / layer's mean)", fontsize=9)
    figure.supylabel("channels", fontsize=9)
    figure.suptitle(title)
    figure.savefig(path, dpi=DPI)


def crop_examples(images, predicted, true, path, title, count=8):
    """The first ``count`` images with the true box (green) and the predicted box (red, dashed), and their IoU."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    count = min(count, len(images))
    cols = min(4, count)
    rows = math.ceil(count / cols)
    figure = _figure(2.4 * cols, 0.9 + 2.5 * rows)
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    iou = box_iou(predicted[:count], true[:count])
    styles = (("lime", "-", true), ("red", "--", predicted))
    for index, ax in enumerate(axes[:count]):
        image = images[index]
        height, width = image.shape[:2]
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=255)
        for colour, style, boxes in styles:
            if valid_boxes(boxes[index : index + 1])[0]:
                x0, y0, x1, y1 = boxes[index]
                # Pixel centres are at integers, so the image's edges are at -0.5 and side - 0.5.
                corner = (x0 * width - 0.5, y0 * height - 0.5)
                ax.add_patch(
                    Rectangle(
                        corner,
                        (x1 - x0) * width,
                        (y1 - y0) * height,
                        fill=False,
                        edgecolor=colour,
                        linestyle=style,
                        linewidth=2,
                    )
                )
        if not valid_boxes(predicted[index : index + 1])[0]:
            caption = "degenerate prediction"
        elif not valid_boxes(true[index : index + 1])[0]:
            caption = "no true box"
        else:
            caption = f"IoU {iou[index]:.2f}"
        ax.set_title(caption, fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[count:]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=c, linestyle=s, linewidth=2) for c, s, _ in styles]
    figure.legend(handles, ["true box", "predicted box"], loc="outside lower center", ncols=2, fontsize=8)
    figure.suptitle(title)
    figure.savefig(path, dpi=DPI)
