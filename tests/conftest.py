import os

# Quieter TensorFlow in test logs; set before any test module imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_data():
    """A small cluttered data set: 4 classes of 32x32 images, enough to learn above chance in seconds."""
    from tfscissor.data import load_data

    return load_data("cluttered:size=32,n=800,classes=4,seed=1")


@pytest.fixture(scope="session")
def trained_plain(tiny_data, tmp_path_factory):
    """A plain Conv-BN-ReLU classifier trained for a few epochs on ``tiny_data``, saved as .keras."""
    from tfscissor.models import build_model, save_model
    from tfscissor.models.training import train_classifier

    model = build_model("plain", tiny_data.image_shape, tiny_data.num_classes, widths=(16, 32, 32))
    train_classifier(model, tiny_data, epochs=10, batch_size=32, learning_rate=3e-3)
    path = tmp_path_factory.mktemp("models") / "plain.keras"
    save_model(model, path)
    return path


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(48, 32, 32, 3)).astype(np.float32)
