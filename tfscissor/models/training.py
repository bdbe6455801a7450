"""Training and evaluating classifiers on a :class:`tfscissor.data.Dataset`."""

import numpy as np

from tfscissor.errors import ModelError
from tfscissor.models.distribute import check_training, trained_under


def steps_in_epoch(split, batch_size):
    """The training steps of one epoch over ``split`` (the last batch may be short)."""
    return -(-len(split) // batch_size)


def check_input(model, image_shape, data_name="the data"):
    """Raise ModelError unless ``model`` takes images of ``image_shape`` (H, W, C) and gives one output."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(
            f"model {model.name} has {len(model.inputs)} inputs and {len(model.outputs)} outputs: tfscissor trains, "
            "trims and evaluates image classifiers with one of each (the images, the class scores)"
        )
    expected = tuple(model.input_shape[1:])
    if expected != tuple(image_shape):
        raise ModelError(
            f"model {model.name} takes images of {expected}, {data_name} has {tuple(image_shape)}: "
            "use data of the model's size and channels, or train a model for this data"
        )


# Knowledge distillation (Hinton et al., 2015) as tfscissor uses it to recover a trimmed or cropped model:
# half the loss from the labels, half from the teacher's outputs softened at this temperature. Not tuned to
# any benchmark: the values of the paper's and Torch-Pruning's examples.
DISTILL_TEMPERATURE = 2.0
DISTILL_WEIGHT = 0.5


def compile_classifier(model, learning_rate=1e-3, decay_steps=None, distill=False):
    """Compile for integer labels with Adam; with ``decay_steps``, the learning rate follows a cosine to 0.

    The decay matters for what tfscissor reports: at a constant rate the validation accuracy of these small
    models swings by several points from one epoch to the next, so the last epoch's figure is a lottery.
    With ``distill`` the targets are rows of (label, teacher outputs...) and the loss is
    :func:`distillation_loss`. The model is compiled in the scope of the ``tf.distribute`` strategy it was
    built under, as its optimizer's and metrics' variables must be.
    """
    import keras

    if decay_steps:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=int(decay_steps))
    with model.distribute_strategy.scope():
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=distillation_loss if distill else "sparse_categorical_crossentropy",
            metrics=[distilled_accuracy] if distill else ["accuracy"],
        )
    return model


def are_probabilities(outputs):
    """Whether a classifier's outputs (a numpy array) are softmax probabilities (non-negative rows summing to
    one) rather than logits."""
    outputs = np.asarray(outputs)
    return bool(outputs.min() >= 0 and np.allclose(outputs.sum(axis=-1), 1.0, atol=1e-3))


def _log_probabilities(outputs):
    """Log-probabilities from a classifier's outputs, whether softmax probabilities or logits."""
    from keras import ops

    is_probability = ops.logical_and(ops.all(outputs >= 0), ops.all(ops.abs(ops.sum(outputs, axis=-1) - 1.0) < 1e-3))
    return ops.where(is_probability, ops.log(ops.clip(outputs, 1e-7, 1.0)), ops.log_softmax(outputs, axis=-1))


def distillation_loss(targets, outputs):
    """``targets`` rows are (label, teacher outputs...): the weighted sum of the cross-entropy with the label
    and the temperature-softened KL divergence from the teacher (scaled by T^2, so its gradients keep their
    size whatever the temperature)."""
    from keras import ops

    labels = ops.cast(targets[:, 0], "int32")
    student = _log_probabilities(outputs)
    hard = -ops.mean(ops.take_along_axis(student, labels[:, None], axis=-1))
    soft_teacher = ops.softmax(_log_probabilities(targets[:, 1:]) / DISTILL_TEMPERATURE, axis=-1)
    soft_student = ops.log_softmax(student / DISTILL_TEMPERATURE, axis=-1)
    kl = ops.mean(ops.sum(soft_teacher * (ops.log(ops.clip(soft_teacher, 1e-7, 1.0)) - soft_student), axis=-1))
    return (1.0 - DISTILL_WEIGHT) * hard + DISTILL_WEIGHT * DISTILL_TEMPERATURE**2 * kl


def distilled_accuracy(targets, outputs):
    from keras import ops

    return ops.mean(ops.cast(ops.equal(ops.argmax(outputs, axis=-1), ops.cast(targets[:, 0], "int64")), "float32"))


def distillation_targets(labels, images, teacher):
    """Labels as training targets: as they are, or with ``teacher``'s outputs for ``images`` beside them (the
    same images, or, for a student that sees crops, the whole images the crops come from)."""
    if teacher is None:
        return labels
    outputs = teacher.predict(images, batch_size=256, verbose=0)
    return np.concatenate([np.asarray(labels, np.float32)[:, None], np.asarray(outputs, np.float32)], axis=1)


def train_classifier(
    model,
    dataset,
    *,
    epochs,
    batch_size=64,
    learning_rate=1e-3,
    seed=0,
    callbacks=(),
    strategy=None,
    teacher=None,
    teacher_data=None,
):
    """Fit ``model`` on ``dataset.train``, validating on ``dataset.val``; return the per-epoch history.

    The learning rate decays from ``learning_rate`` to 0 over the run (cosine). The model is trained in
    place (training is the one step that is meant to change a model). With a ``teacher`` (a model of the
    same classes, such as the model before trimming), the loss is :func:`distillation_loss` on the
    teacher's outputs, computed once before training, for the images of ``teacher_data``: by default
    ``dataset`` itself; for a student that sees crops or a lower resolution, the same images, in the same
    order, as the teacher takes them (the whole images at its resolution). With a ``tf.distribute`` ``strategy`` (see
    :func:`tfscissor.models.distribute.strategy_for`), a copy trains on its replicas and its weights are copied
    back; ``batch_size`` is the global batch, split across the replicas.
    """
    import keras

    check_input(model, dataset.image_shape, dataset.spec)
    check_training(strategy, batch_size, train_split=len(dataset.train), val_split=len(dataset.val))
    teacher_data = dataset if teacher_data is None else teacher_data
    if teacher is not None:
        check_input(teacher, teacher_data.image_shape, "the teacher's data")
        if teacher.output_shape[-1] != model.output_shape[-1]:
            raise ModelError(
                f"teacher {teacher.name} has {teacher.output_shape[-1]} outputs, the model {model.output_shape[-1]}: "
                "distil from a model of the same classes"
            )
        for name in ("train", "val"):
            ours, theirs = getattr(dataset, name), getattr(teacher_data, name)
            if len(ours) != len(theirs) or not np.array_equal(ours.labels, theirs.labels):
                raise ModelError(
                    f"the teacher's {name} split ({len(theirs)} images) is not the student's ({len(ours)}): "
                    "give the teacher the same images in the same order"
                )
    steps_per_epoch = steps_in_epoch(dataset.train, batch_size)
    train_images = dataset.train.images.astype(np.float32)
    val_images = dataset.val.images.astype(np.float32)
    train_targets = distillation_targets(dataset.train.labels, teacher_data.train.images.astype(np.float32), teacher)
    val_targets = distillation_targets(dataset.val.labels, teacher_data.val.images.astype(np.float32), teacher)
    with trained_under(model, strategy) as trainee:
        keras.utils.set_random_seed(seed)
        compile_classifier(trainee, learning_rate, decay_steps=epochs * steps_per_epoch, distill=teacher is not None)
        history = trainee.fit(
            train_images,
            train_targets,
            validation_data=(val_images, val_targets),
            epochs=epochs,
            batch_size=batch_size,
            shuffle=True,
            verbose=0,
            callbacks=list(callbacks),
        )
    # The distilled metric is the same top-1 accuracy: report it under the usual name.
    return {
        k.replace("distilled_accuracy", "accuracy"): [float(v) for v in values] for k, values in history.history.items()
    }


def evaluate_classifier(model, split, batch_size=256, callbacks=()):
    """Top-1 accuracy of a Keras ``model`` on ``split``."""
    if len(split) == 0:
        raise ModelError("cannot evaluate on an empty split: check the data spec")
    scores = model.predict(split.images.astype(np.float32), batch_size=batch_size, verbose=0, callbacks=list(callbacks))
    if scores.shape[-1] <= int(split.labels.max()):
        raise ModelError(
            f"model {model.name} has {scores.shape[-1]} outputs, the data has label {int(split.labels.max())}: "
            "use a model trained on this data"
        )
    return float(np.mean(np.argmax(scores, axis=-1) == split.labels))
