"""Small building blocks shared by the builders, so that every conv is named and shaped the same way."""

import keras

# Keras's default (0.99) leaves the moving statistics far from the data after the short trainings and
# fine-tunes tfscissor runs on a CPU: validation accuracy sat at chance while training accuracy was 88%
# (480 images, 10 epochs). 0.9 settles within an epoch.
BN_MOMENTUM = 0.9


def input_block(input_shape):
    """Model input taking raw pixels in [0, 255], rescaled inside the model.

    Keeping the rescale in the graph means the int8 model's input is the pixel value shifted by -128, which
    is what a camera driver hands the firmware, with no float pre-processing on the device.
    """
    inputs = keras.Input(shape=input_shape, name="input")
    return inputs, keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)


def conv_bn_act(x, filters, kernel_size, name, strides=1, activation="relu"):
    """Conv (no bias: batch norm supplies the shift) -> BatchNormalization -> activation (if any)."""
    x = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(
        x
    )
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    if activation == "relu":
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    elif activation == "relu6":
        x = keras.layers.ReLU(max_value=6.0, name=f"{name}_relu")(x)
    return x


def classifier_head(x, num_classes, dropout=0.0):
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    return keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
