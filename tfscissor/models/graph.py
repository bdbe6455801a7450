"""Walking and rebuilding the layer graph of a functional or Sequential Keras 3 model.

Shared by the cost profile (which walks) and trimming (which rebuilds with changed layers). A rebuild puts
the layers of nested models (a ``keras.applications`` backbone used as one layer) into the top graph, so
every layer of the result can be reached, measured and sliced by name.
"""

import keras

from tfscissor.errors import ModelError


def functional_graph(model, advice="use a functional or Sequential model"):
    """The Functional graph that runs ``model``: the model itself, or a Sequential model's inner one.

    ``advice`` ends the error raised for a subclassed model, which has no graph.
    """
    if isinstance(model, keras.Sequential):
        # Keras builds the graph of a Sequential model lazily, once it knows the input shape.
        graph = getattr(model, "_functional", None)
        if graph is None:
            raise ModelError(
                f"Sequential model '{model.name}' is not built, so its shapes are unknown. Start it with "
                f"keras.Input(shape=...) or call model.build((None, ...)) before profiling or trimming."
            )
        return graph
    if not hasattr(model, "_nodes_by_depth"):
        raise ModelError(
            f"Model '{model.name}' ({type(model).__name__}) is a subclassed model with no layer graph to walk: "
            f"{advice}."
        )
    return model


def model_inputs(graph):
    """The graph's inputs as a model built on them should take them: one tensor, or a list of several.

    A model built on a list of one input warns each time it is called with a plain tensor.
    """
    return graph.inputs[0] if len(graph.inputs) == 1 else graph.inputs


def nodes_in_order(graph):
    """The graph's nodes in the order Keras runs them: deepest first, ties in the order of the operations."""
    operation_index = {id(operation): index for index, operation in enumerate(graph._operations)}
    ordered = []
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        ordered.extend(
            sorted(
                graph._nodes_by_depth[depth],
                key=lambda node: (
                    operation_index[id(node.operation)],
                    node.operation._inbound_nodes.index(node),
                ),
            )
        )
    return ordered


def is_nested_model(operation):
    return isinstance(operation, keras.Model)


def find_operation(model, name):
    """The layer or operation called ``name`` in ``model`` or in any model nested in it."""
    for operation in functional_graph(model)._operations:
        if operation.name == name:
            return operation
        if is_nested_model(operation):
            try:
                return find_operation(operation, name)
            except ValueError:
                pass
    raise ValueError(f"model {model.name!r} has no layer named {name!r}")


def rebuild_graph(model, clone, image_size=None, bypass=None):
    """A new functional model with the graph of ``model``, each operation replaced by ``clone(operation)``.

    Nested models are inlined: their operations join the top graph under their own names. Returns the model
    and a dict from each original operation to its clone, so that the caller can copy (or slice) weights.
    With ``image_size`` = (height, width), every (N, H, W, C) input takes images of that size instead.
    ``bypass`` maps operation names to what replaces their call: the index of the input whose tensor stands
    for the output, or None to drop the operation (nothing kept may read its output). The input model is
    not changed.
    """
    graph = functional_graph(model)
    clones = {}
    tensors = {}
    inputs = []
    for tensor in graph.inputs:
        layer = tensor._keras_history.operation
        shape = tuple(tensor.shape[1:])
        if image_size is not None and len(shape) == 3:
            shape = (*image_size, shape[2])
        new_input = keras.Input(shape=shape, batch_size=tensor.shape[0], dtype=tensor.dtype, name=layer.name)
        tensors[id(tensor)] = new_input
        inputs.append(new_input)
    _rebuild_into(graph, clone, clones, tensors, bypass or {})
    outputs = [tensors[id(tensor)] for tensor in graph.outputs]
    names = [new.name for _, new in clones.values()]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise ModelError(
            f"model {model.name!r} has nested models whose layer names clash with others ({', '.join(clashes)}): "
            f"rename them before trimming"
        )
    # One input is passed as a tensor, not a list of one, as Keras builds such a model: calling it with a
    # tensor then matches its structure.
    rebuilt = keras.Model(
        inputs[0] if len(inputs) == 1 else inputs, outputs[0] if len(outputs) == 1 else outputs, name=model.name
    )
    return rebuilt, dict(clones.values())


def _rebuild_into(graph, clone, clones, tensors, bypass):
    for node in nodes_in_order(graph):
        if node.is_input:
            continue
        operation = node.operation
        if operation.name in bypass:
            index = bypass[operation.name]
            if index is not None:
                tensors[id(node.outputs[0])] = tensors[id(node.input_tensors[index])]
            continue
        if is_nested_model(operation):
            inner = functional_graph(operation)
            arguments = node.arguments
            outer_inputs = keras.tree.flatten(arguments.args[0] if arguments.args else arguments.kwargs["inputs"])
            for inner_input, outer_input in zip(inner.inputs, outer_inputs, strict=True):
                tensors[id(inner_input)] = tensors[id(outer_input)]
            _rebuild_into(inner, clone, clones, tensors, bypass)
            results = [tensors[id(tensor)] for tensor in inner.outputs]
        else:
            if id(operation) not in clones:
                clones[id(operation)] = (operation, clone(operation))
            args, kwargs = node.arguments.fill_in(tensors)
            results = keras.tree.flatten(clones[id(operation)][1](*args, **kwargs))
        for tensor, result in zip(node.outputs, results, strict=True):
            tensors[id(tensor)] = result


def copy_layer(operation):
    """A fresh layer or operation of the same class and configuration (weights are not copied)."""
    return type(operation).from_config(operation.get_config())


def inline_nested(model, bypass=None):
    """A functional copy of ``model`` with nested models' layers in the top graph and all weights copied;
    ``bypass`` as in :func:`rebuild_graph`."""
    rebuilt, clones = rebuild_graph(model, copy_layer, bypass=bypass)
    for original, clone in clones.items():
        if isinstance(original, keras.layers.Layer) and original.weights:
            clone.set_weights(original.get_weights())
    return rebuilt


def with_input_size(model, size):
    """A copy of ``model`` (weights included) that takes ``size`` x ``size`` images.

    Only a model whose weights do not depend on the image size (convolutions, then global pooling) can be
    moved; any other raises ModelError naming the layer that stops it.
    """
    height, width = (size, size) if isinstance(size, int) else size

    def refuse(where, err):
        return ModelError(
            f"model {model.name} cannot take {height}x{width} images: {where} is sized for its input "
            f"({str(err).strip().splitlines()[0]}); only convolutional models with global pooling change resolution"
        )

    try:
        rebuilt, clones = rebuild_graph(model, copy_layer, image_size=(height, width))
    except ValueError as err:  # a layer that cannot be called on the new shape, such as a fixed Reshape
        raise refuse("a layer", err) from None
    for original, clone in clones.items():
        if isinstance(original, keras.layers.Layer) and original.weights:
            try:
                clone.set_weights(original.get_weights())
            except ValueError as err:
                raise refuse(f"layer '{original.name}'", err) from None
    return rebuilt


def has_nested_models(model):
    return any(is_nested_model(operation) for operation in functional_graph(model)._operations)
