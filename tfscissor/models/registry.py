"""Model builders by name: the project's own architectures plus any ``keras.applications`` model."""

from tfscissor.errors import UsageError

_BUILDERS = {}


def register_builder(name):
    """Register ``fn(input_shape, num_classes, **kwargs) -> keras.Model`` under ``name``."""

    def decorator(fn):
        _BUILDERS[name] = fn
        return fn

    return decorator


def builder_names():
    return tuple(sorted(_BUILDERS))


def build_model(name, input_shape, num_classes, seed=None, **kwargs):
    """Build an untrained classifier; with ``seed``, its initial weights are reproducible.

    ``name`` is a registered builder (``plain``, ``resnet``, ``mobilenetv2``) or the name of a
    ``keras.applications`` model such as ``ResNet50`` (built with ``weights=None``; pass ``weights=PATH`` to
    load a user weights file).
    """
    # Importing the builder modules registers them; done here so that `import tfscissor` stays light.
    import keras

    from tfscissor.models import applications, mobilenetv2, plain, resnet  # noqa: F401

    if seed is not None:
        # Initialisers draw from Keras's global generator: seeding only the training left runs unrepeatable.
        keras.utils.set_random_seed(seed)

    if name in _BUILDERS:
        return _BUILDERS[name](tuple(input_shape), int(num_classes), **kwargs)
    if applications.is_application(name):
        return applications.build_application(name, tuple(input_shape), int(num_classes), **kwargs)
    raise UsageError(
        f"unknown model {name!r}: use one of {', '.join(builder_names())} or a keras.applications name such as ResNet50"
    )
