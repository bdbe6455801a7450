"""Keras callbacks for the user's terminal."""

import keras

from tfscissor.progress import note, progress_bar


class EpochProgress(keras.callbacks.Callback):
    """A bar per epoch with the running loss and accuracy, then one summary line per epoch."""

    def __init__(self, desc="train"):
        super().__init__()
        self.desc = desc
        self._bar = None

    def on_epoch_begin(self, epoch, logs=None):
        epochs = self.params.get("epochs")
        self._bar = progress_bar(total=self.params.get("steps"), desc=f"{self.desc} {epoch + 1}/{epochs}", unit="batch")

    def on_train_batch_end(self, batch, logs=None):
        self._bar.update(1)
        if logs:
            self._bar.set_postfix({k: f"{float(v):.3f}" for k, v in logs.items() if k in ("loss", "accuracy")})

    def on_epoch_end(self, epoch, logs=None):
        self._bar.close()
        shown = ", ".join(f"{k} {float(v):.3f}" for k, v in (logs or {}).items() if k != "learning_rate")
        note(f"{self.desc} {epoch + 1}/{self.params.get('epochs')}: {shown}")
