"""Training the cropper on boxes, and how well its boxes match the truth."""

from __future__ import annotations

import numpy as np

from tfscissor.deploy.boxes import box_iou, valid_boxes
from tfscissor.errors import ModelError, UsageError

__all__ = ["train_cropper", "predict_boxes", "run_model", "box_report", "late_gain", "LATE_EPOCHS", "STILL_IMPROVING"]


def _check_pairs(model, images, boxes, what):
    images = np.asarray(images)
    expected = tuple(model.input_shape[1:])
    if images.shape[1:] != expected:
        raise ModelError(
            f"cropper {model.name} takes images of {expected}, the {what} images are {images.shape[1:]}: "
            "build the cropper for this data's image size"
        )
    boxes = np.asarray(boxes, np.float32)
    if boxes.shape != (len(images), 4):
        raise UsageError(f"{what} boxes must have shape ({len(images)}, 4), got {boxes.shape}")
    return images, boxes


def _flip_dataset(images, boxes, batch_size, seed):
    """Shuffled batches with random horizontal flips (the box flips with the image).

    The coin flips come from a seeded stream zipped with the data, not from a random op inside the parallel
    map, whose draws reach the images in a varying order: so a seed repeats the training exactly.
    """
    import tensorflow as tf

    def flip(pair, coin):
        image, box = pair
        flipped = coin % 2 == 0
        image = tf.cond(flipped, lambda: tf.reverse(image, axis=[1]), lambda: image)
        box = tf.cond(flipped, lambda: tf.stack([1.0 - box[2], box[1], 1.0 - box[0], box[3]]), lambda: box)
        return tf.cast(image, tf.float32), box

    pairs = tf.data.Dataset.from_tensor_slices((images, boxes))
    pairs = pairs.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    coins = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    dataset = tf.data.Dataset.zip(pairs, coins)
    return dataset.map(flip, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(tf.data.AUTOTUNE)


# The cropper's training defaults, for the library, the CLI and recipes alike. GIoU (with the weighted MSE)
# rather than the MSE alone: it scores the overlap that the crop depends on, and boxed 5 to 6 IoU points
# better in the same epochs on two embedded data sets, every seed (bench/RESULTS.md, issue 19). 45 epochs
# rather than 20: at 20 the sized cropper's val IoU still rose by 0.011 over the last five epochs on both data
# sets, and the longer schedule boxed 3.4 to 5.8 IoU points better, every seed, after which it stopped rising;
# a cropper is small, so its epochs are cheap next to the classifier's.
CROPPER_EPOCHS = 45
CROPPER_LEARNING_RATE = 5e-3
CROPPER_LOSS = "giou"


def train_cropper(
    cropper,
    images,
    boxes,
    val_images=None,
    val_boxes=None,
    *,
    epochs=CROPPER_EPOCHS,
    batch_size=64,
    learning_rate=CROPPER_LEARNING_RATE,
    loss=CROPPER_LOSS,
    flip=True,
    seed=0,
    callbacks=(),
):
    """Fit ``cropper`` (in place) on uint8 ``images`` and normalised ``boxes``; return the per-epoch history.

    ``loss``: ``giou`` (generalised IoU plus the weighted MSE) or ``mse`` (the weighted MSE alone, Smart
    Scissor's). The learning rate decays to 0 on a cosine, and ``flip`` adds random horizontal flips. The
    history includes ``mean_iou`` (and ``val_mean_iou``).
    """
    import keras

    from tfscissor.crop.losses import LOSSES, mean_iou

    if loss not in LOSSES:
        raise UsageError(f"unknown cropper loss {loss!r}: use one of {', '.join(LOSSES)}")
    images, boxes = _check_pairs(cropper, images, boxes, "training")
    keras.utils.set_random_seed(seed)
    steps = -(-len(images) // batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=epochs * steps)
    cropper.compile(optimizer=keras.optimizers.Adam(schedule), loss=LOSSES[loss], metrics=[mean_iou])
    if flip:
        train = _flip_dataset(images, boxes, batch_size, seed)
    else:
        import tensorflow as tf

        train = (
            tf.data.Dataset.from_tensor_slices((images.astype(np.float32), boxes))
            .shuffle(len(images), seed=seed)
            .batch(batch_size)
        )
    validation = None
    if val_images is not None:
        val_images, val_boxes = _check_pairs(cropper, val_images, val_boxes, "validation")
        validation = (val_images.astype(np.float32), val_boxes)
    history = cropper.fit(train, validation_data=validation, epochs=epochs, verbose=0, callbacks=list(callbacks))
    return {k: [float(v) for v in values] for k, values in history.history.items()}


# A box whose val IoU still rose by this much over the last LATE_EPOCHS epochs was stopped early: more pay.
STILL_IMPROVING = 0.005
LATE_EPOCHS = 5


def late_gain(val_iou, epochs_back=LATE_EPOCHS):
    """How much the val IoU rose over the last ``epochs_back`` epochs of a training (its history, or over all
    of a shorter one): near 0 once the box stopped improving, at or above :data:`STILL_IMPROVING` when more
    epochs would box better. None without two epochs of val IoU."""
    if len(val_iou) < 2:
        return None
    return float(val_iou[-1] - val_iou[max(0, len(val_iou) - 1 - epochs_back)])


def run_model(model, images, batch_size=256):
    """float32 outputs of a Keras model, or of a ``TFLiteModel`` run one image at a time as deployed."""
    from tfscissor.deploy.litert import is_tflite

    images = np.asarray(images)
    if is_tflite(model):
        return model.predict(images).astype(np.float32)
    return model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0).astype(np.float32)


def predict_boxes(cropper, images, batch_size=256):
    """Normalised boxes (float32 (N, 4)) that a Keras cropper or a ``TFLiteModel`` cropper predicts."""
    return run_model(cropper, images, batch_size)


def box_report(predicted, true=None):
    """How usable predicted boxes are: the count of degenerate ones and, given the truth, mean IoU and the
    share with IoU above 0.5."""
    predicted = np.asarray(predicted, np.float32)
    report = {"boxes": len(predicted), "degenerate": int((~valid_boxes(predicted)).sum())}
    if true is not None:
        iou = box_iou(predicted, true)
        report.update(mean_iou=float(iou.mean()), iou_above_0_5=float((iou > 0.5).mean()))
    return report
