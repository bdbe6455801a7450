"""Training and evaluating classifiers on a :class:`tfscissor.data.Dataset`."""

import numpy as np

from tfscissor.errors import ModelError


def check_input(model, image_shape, data_name="the data"):
    """Raise ModelError unless ``model`` takes images of ``image_shape`` (H, W, C)."""
    expected = tuple(model.input_shape[1:])
    if expected != tuple(image_shape):
        raise ModelError(
            f"model {model.name} takes images of {expected}, {data_name} has {tuple(image_shape)}: "
            "use data of the model's size and channels, or train a model for this data"
        )


def compile_classifier(model, learning_rate=1e-3, decay_steps=None):
    """Compile for integer labels with Adam; with ``decay_steps``, the learning rate follows a cosine to 0.

    The decay matters for what tfscissor reports: at a constant rate the validation accuracy of these small
    models swings by several points from one epoch to the next, so the last epoch's figure is a lottery.
    The model is compiled in the scope of the ``tf.distribute`` strategy it was built under, as its
    optimizer's and metrics' variables must be.
    """
    import keras

    if decay_steps:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=int(decay_steps))
    with model.distribute_strategy.scope():
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    return model


def train_classifier(model, dataset, *, epochs, batch_size=64, learning_rate=1e-3, seed=0, callbacks=(), strategy=None):
    """Fit ``model`` on ``dataset.train``, validating on ``dataset.val``; return the per-epoch history.

    The learning rate decays from ``learning_rate`` to 0 over the run (cosine). The model is trained in
    place (training is the one step that is meant to change a model). With a ``tf.distribute`` ``strategy``
    (see :func:`tfscissor.distribute.strategy_for`), a copy trains on its replicas and its weights are
    copied back; ``batch_size`` is the global batch, split across the replicas.
    """
    import keras

    from tfscissor.distribute import check_training, trained_under

    check_input(model, dataset.image_shape, dataset.spec)
    check_training(strategy, batch_size, train_split=len(dataset.train), val_split=len(dataset.val))
    steps_per_epoch = -(-len(dataset.train) // batch_size)
    with trained_under(model, strategy) as trainee:
        keras.utils.set_random_seed(seed)
        compile_classifier(trainee, learning_rate, decay_steps=epochs * steps_per_epoch)
        history = trainee.fit(
            dataset.train.images.astype(np.float32),
            dataset.train.labels,
            validation_data=(dataset.val.images.astype(np.float32), dataset.val.labels),
            epochs=epochs,
            batch_size=batch_size,
            shuffle=True,
            verbose=0,
            callbacks=list(callbacks),
        )
    return {k: [float(v) for v in values] for k, values in history.history.items()}


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
