"""Training batches whose crops are drawn afresh every epoch. Imported only when training (it needs Keras)."""

import keras
import numpy as np


class EpochCrops(keras.utils.PyDataset):
    """Batches of ``(float32 images, labels)`` from ``draw(epoch) -> (uint8 images, order)``.

    Keras calls :meth:`on_epoch_end` after every epoch, so each epoch sees new crops in a new order.
    """

    def __init__(self, draw, labels, batch_size):
        super().__init__()
        self.draw, self.labels, self.batch_size = draw, np.asarray(labels), batch_size
        self.epoch = 0
        self.images, self.order = draw(0)

    def __len__(self):
        return -(-len(self.labels) // self.batch_size)

    def __getitem__(self, index):
        chosen = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        return self.images[chosen].astype(np.float32), self.labels[chosen]

    def on_epoch_end(self):
        self.epoch += 1
        self.images, self.order = self.draw(self.epoch)
