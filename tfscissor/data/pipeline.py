"""tf.data pipelines over in-memory splits. TensorFlow is imported here only, inside the function."""

from __future__ import annotations

from tfscissor.errors import UsageError

__all__ = ["to_tf_dataset"]


def to_tf_dataset(split, batch_size, shuffle=False, seed=0, with_boxes=False):
    """A batched ``tf.data.Dataset`` over ``split``.

    Elements are ``(images, labels)``: float32 images with pixels still 0..255 (models carry their own
    Rescaling) and int32 labels. With ``with_boxes=True`` they are ``(images, {"labels": labels,
    "boxes": boxes})``, boxes float32 [xmin, ymin, xmax, ymax] in [0, 1]; a dict rather than a third
    element because Keras reads a third element as sample weights. A cropper trains on
    ``ds.map(lambda x, y: (x, y["boxes"]))``.

    With ``shuffle=True`` the order is reshuffled every epoch, reproducibly for a given ``seed``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size must be a positive integer, got {batch_size!r}: e.g. batch_size=32")
    if with_boxes and split.boxes is None:
        raise UsageError(
            "with_boxes=True but this split has no boxes: use a data set with boxes (cluttered, or a folder "
            "with boxes.csv) or with_boxes=False"
        )
    import tensorflow as tf

    tensors = (split.images, split.labels) if not with_boxes else (split.images, split.labels, split.boxes)
    dataset = tf.data.Dataset.from_tensor_slices(tensors)
    if shuffle:
        dataset = dataset.shuffle(max(len(split), 1), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)

    # Cast after batching: one op per batch, and the uint8 copy is all that sits in memory.
    if with_boxes:

        def cast(images, labels, boxes):
            return tf.cast(images, tf.float32), {"labels": labels, "boxes": boxes}

    else:

        def cast(images, labels):
            return tf.cast(images, tf.float32), labels

    return dataset.map(cast, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
