"""Training state saved after every epoch, so that a killed training stage resumes from its last epoch."""

import json
import logging
import re
from pathlib import Path

import keras

from tfscissor.io import atomic_path

log = logging.getLogger("tfscissor.recipe")


class EpochCheckpoint(keras.callbacks.Callback):
    """Like Keras's ``BackupAndRestore``, but crash-safe and for several ``fit`` calls in one stage.

    ``BackupAndRestore`` writes the weights and then the epoch number as two plain files: a kill between them
    resumes the wrong epoch, and a kill during the first leaves a torn file. Here each epoch's state (weights
    with the optimizer's variables, so the learning-rate schedule and Adam's moments continue) is one file,
    written atomically, with the epoch in its name. A stage that calls ``fit`` several times (trim rounds,
    cropper then classifier) gets one subdirectory per call, in call order; the stage's code is deterministic,
    so the n-th call of a resumed stage is the n-th call of the killed one.
    """

    def __init__(self, directory, stage):
        super().__init__()
        self.directory = Path(directory)
        self.stage = stage
        self.fits = 0

    def on_train_begin(self, logs=None):
        self.fits += 1
        self.folder = self.directory / f"fit{self.fits}"
        saved = sorted(self.folder.glob("epoch-*.weights.h5"))
        if saved:
            # The optimizer's variables (Adam's moments, the step the schedule reads) must exist to be loaded, and
            # fit() builds them only at the first step.
            if self.model.optimizer is not None and not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)
            self.model.load_weights(saved[-1])
            epoch = int(re.search(r"epoch-(\d+)", saved[-1].name).group(1))
            # Keras's own resume hook (BackupAndRestore sets it too): fit starts at this epoch.
            self.model._initial_epoch = epoch
            log.info("%s: resumed fit %d after epoch %d from %s", self.stage, self.fits, epoch, saved[-1])

    def on_train_end(self, logs=None):
        # Keras keeps the resume point on the model; a later fit of the same model must start at epoch 0.
        self.model._initial_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        path = self.folder / f"epoch-{epoch + 1:05d}.weights.h5"
        with atomic_path(path, suffix=".weights.h5") as tmp:
            self.model.save_weights(tmp)
        for older in self.folder.glob("epoch-*.weights.h5"):
            if older != path:
                older.unlink()
        metrics = json.dumps({k: round(float(v), 6) for k, v in (logs or {}).items()})
        log.info("%s: fit %d epoch %d done, checkpoint saved %s", self.stage, self.fits, epoch + 1, metrics)
