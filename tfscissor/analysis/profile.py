"""Per-layer compute, parameters and activation memory of a Keras model, from one walk of its layer graph.

:func:`profile_model` walks a functional or Sequential Keras 3 model in the order Keras itself runs the graph
(a topological order: deepest nodes first, ties in the order of ``model.summary()``). Shapes are propagated
from the model's inputs with batch size 1, so a nested model built for unknown sizes (``keras.applications``
with ``include_top=False``) is still costed at the size it is actually called with. The walk reads the graph
that Keras 3 records (``Functional._nodes_by_depth``, each node's arguments), the structures Keras's own
``Functional`` runs through; they are not public API, so the tests exercise them on every Keras upgrade.

- MACs of each call come from the cost rules in :mod:`tfscissor.analysis.costs` (conventions there). A nested
  model is walked into: its row carries the sum of its layers' MACs and its own layers as ``sublayers``.
- A layer called more than once (shared weights) has one row: MACs and activations summed over its calls,
  the output shape of its first call.
- Rows follow ``model.summary()``: every layer of ``model.layers`` (a functional model's InputLayer included,
  a Sequential model's implicit one left out) plus every ``keras.ops`` call recorded in a functional graph.

Peak activation memory is a simple estimate, in elements (multiply by the bytes per element of the deployed
type, 1 for int8): the model's inputs are live from the start; the walk allocates each call's outputs while
its inputs are still live, and frees a tensor right after its last consumer in the walk, except the model's
outputs, which stay live to the end. The peak is the largest live total seen. Inside a nested model the same
rule applies to its own tensors, on top of whatever the outer graph keeps live. Every layer output counts as a
new buffer (a runtime may alias Reshape or Flatten in place), and weights are not activations.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import keras

from tfscissor.analysis.costs import find_rule, layer_macs
from tfscissor.errors import DataError, ModelError
from tfscissor.models.graph import functional_graph, nodes_in_order

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerProfile:
    """Costs of one layer (or ``keras.ops`` call) of a model, at batch size 1.

    ``output_shape`` has no batch dimension; it is a tuple of such shapes if the layer has several outputs.
    ``activation_elements`` is the number of elements of the layer's output tensor(s). ``sublayers`` holds the
    rows of a nested model's own layers and is empty for an ordinary layer.
    """

    name: str
    class_name: str
    macs: int
    params: int
    output_shape: tuple
    activation_elements: int
    sublayers: tuple[LayerProfile, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (shapes as lists); :meth:`from_dict` reads it back."""
        data = {
            "name": self.name,
            "class_name": self.class_name,
            "macs": self.macs,
            "params": self.params,
            "output_shape": _shape_to_json(self.output_shape),
            "activation_elements": self.activation_elements,
        }
        if self.sublayers:
            data["sublayers"] = [layer.to_dict() for layer in self.sublayers]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerProfile:
        return cls(
            name=data["name"],
            class_name=data["class_name"],
            macs=data["macs"],
            params=data["params"],
            output_shape=_shape_from_json(data["output_shape"]),
            activation_elements=data["activation_elements"],
            sublayers=tuple(cls.from_dict(layer) for layer in data.get("sublayers", ())),
        )


@dataclass(frozen=True)
class ModelProfile:
    """Costs of a whole model at batch size 1: its layers in graph order and the totals.

    ``params`` equals ``model.count_params()``. ``peak_activation_elements`` is the estimate described in
    :mod:`tfscissor.analysis.profile`, reached while running ``peak_activation_layer`` (``outer/inner`` when the
    peak falls inside a nested model).
    """

    name: str
    layers: tuple[LayerProfile, ...]
    params: int
    trainable_params: int
    peak_activation_elements: int
    peak_activation_layer: str

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one inference (batch size 1)."""
        return sum(layer.macs for layer in self.layers)

    def table(self, expand_nested: bool = False) -> list[dict[str, Any]]:
        """One row per layer, ready for a printed table or JSON.

        Keys: ``name``, ``class``, ``output_shape`` (a list, or a list of lists), ``macs``, ``params``,
        ``activations`` (output elements). With ``expand_nested`` each nested model's row is followed by the
        rows of its own layers, named ``outer/inner``.
        """
        rows: list[dict[str, Any]] = []

        def add(layers: tuple[LayerProfile, ...], prefix: str) -> None:
            for layer in layers:
                rows.append(
                    {
                        "name": prefix + layer.name,
                        "class": layer.class_name,
                        "output_shape": _shape_to_json(layer.output_shape),
                        "macs": layer.macs,
                        "params": layer.params,
                        "activations": layer.activation_elements,
                    }
                )
                if expand_nested and layer.sublayers:
                    add(layer.sublayers, f"{prefix}{layer.name}/")

        add(self.layers, "")
        return rows

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the totals and every layer; :meth:`from_dict` reads it back."""
        return {
            "name": self.name,
            "macs": self.macs,
            "params": self.params,
            "trainable_params": self.trainable_params,
            "peak_activation_elements": self.peak_activation_elements,
            "peak_activation_layer": self.peak_activation_layer,
            "layers": [layer.to_dict() for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelProfile:
        """Read back what :meth:`to_dict` wrote (for example from a stage manifest)."""
        try:
            return cls(
                name=data["name"],
                layers=tuple(LayerProfile.from_dict(layer) for layer in data["layers"]),
                params=data["params"],
                trainable_params=data["trainable_params"],
                peak_activation_elements=data["peak_activation_elements"],
                peak_activation_layer=data["peak_activation_layer"],
            )
        except (KeyError, TypeError) as err:
            raise DataError(
                f"Not a tfscissor model profile (as written by ModelProfile.to_dict()): {type(err).__name__} {err}"
            ) from err


def profile_model(model: keras.Model) -> ModelProfile:
    """Profile a built functional or Sequential Keras 3 model at batch size 1.

    Raises:
        TypeError: ``model`` is not a Keras model.
        ModelError: the model has no layer graph to walk (a subclassed model, or a Sequential model that is
            not built), an input has sizes other than the batch left unknown, or a layer with weights has no
            cost rule (see :func:`tfscissor.analysis.register_cost`).
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"profile_model() takes a keras.Model (Keras 3); got {type(model).__name__}")
    input_specs = [_batch_one_spec(tensor, model) for tensor in functional_graph(model).inputs]
    walk = _walk(model, input_specs, {})
    rows = tuple(tally.freeze() for tally in walk.tallies.values() if tally.shown)
    trainable = sum(math.prod(weight.shape) for weight in model.trainable_weights)
    return ModelProfile(
        name=model.name,
        layers=rows,
        params=int(model.count_params()),
        trainable_params=int(trainable),
        peak_activation_elements=walk.peak,
        peak_activation_layer=walk.peak_layer,
    )


def _batch_one_spec(tensor, model: keras.Model) -> keras.KerasTensor:
    if any(dim is None for dim in tensor.shape[1:]):
        raise ModelError(
            f"Input '{tensor.name}' of model '{model.name}' has shape {tuple(tensor.shape)}: every size but the "
            f"batch must be known to count MACs. Build the model with a fixed input, e.g. "
            f"keras.Input(shape=(224, 224, 3)), or wrap it: keras.Model(inp, model(inp))."
        )
    return keras.KerasTensor(shape=(1, *tensor.shape[1:]), dtype=tensor.dtype)


class _Tally:
    """What the calls of one operation in one graph have cost so far."""

    def __init__(self, operation, shown: bool) -> None:
        self.operation = operation
        self.shown = shown
        self.macs = 0
        self.activation_elements = 0
        self.output_shape: tuple | None = None
        # For a nested model: the tallies of its own operations, shared by all its calls.
        self.nested: dict[int, _Tally] = {}

    def record(self, output_shapes: list[Shape], macs: int) -> None:
        if self.output_shape is None:
            self.output_shape = output_shapes[0] if len(output_shapes) == 1 else tuple(output_shapes)
        self.macs += macs
        self.activation_elements += sum(math.prod(shape) for shape in output_shapes)

    def freeze(self) -> LayerProfile:
        operation = self.operation
        params = operation.count_params() if isinstance(operation, keras.layers.Layer) else 0
        return LayerProfile(
            name=operation.name,
            class_name=type(operation).__name__,
            macs=self.macs,
            params=int(params),
            output_shape=self.output_shape if self.output_shape is not None else (),
            activation_elements=self.activation_elements,
            sublayers=tuple(tally.freeze() for tally in self.nested.values() if tally.shown),
        )


@dataclass
class _Walk:
    tallies: dict[int, _Tally]
    outputs: list[keras.KerasTensor]
    macs: int = 0
    peak: int = 0
    peak_layer: str = ""
    sizes: dict[int, int] = field(default_factory=dict)


def _walk(
    model: keras.Model,
    input_specs: list[keras.KerasTensor],
    tallies: dict[int, _Tally],
    pinned_inputs: Iterable[int] = (),
) -> _Walk:
    """Run ``model``'s graph on ``input_specs``, recording costs into ``tallies`` (keyed by operation id).

    The inputs at the positions in ``pinned_inputs`` are never freed: an enclosing graph still needs them.
    """
    graph = functional_graph(
        model,
        advice=f"Profile a functional or Sequential model, or register a cost rule for {type(model).__name__} "
        f"with tfscissor.analysis.register_cost",
    )
    # model.layers and model.summary() leave out the InputLayer that Keras adds to a Sequential model.
    hide_input_layers = isinstance(model, keras.Sequential)
    for operation in graph._operations:
        if id(operation) not in tallies:
            hidden = hide_input_layers and isinstance(operation, keras.layers.InputLayer)
            tallies[id(operation)] = _Tally(operation, shown=not hidden)

    nodes = nodes_in_order(graph)
    walk = _Walk(tallies=tallies, outputs=[])
    specs: dict[int, keras.KerasTensor] = {}
    for tensor, spec in zip(graph.inputs, input_specs, strict=True):
        specs[id(tensor)] = spec

    consumers: Counter[int] = Counter()
    for node in nodes:
        consumers.update({id(tensor) for tensor in node.input_tensors})
    kept = {id(tensor) for tensor in graph.outputs}
    kept.update(id(graph.inputs[index]) for index in pinned_inputs)

    live = 0
    for tensor in graph.inputs:
        if id(tensor) not in walk.sizes:
            walk.sizes[id(tensor)] = math.prod(_shape(specs[id(tensor)], model))
            live += walk.sizes[id(tensor)]
    walk.peak = live
    walk.peak_layer = next((node.operation.name for node in nodes if node.is_input), "")

    for node in nodes:
        operation = node.operation
        tally = tallies[id(operation)]
        if node.is_input:
            tally.record([_shape(specs[id(node.outputs[0])], operation)], 0)
            continue

        input_ids = list(dict.fromkeys(id(tensor) for tensor in node.input_tensors))
        input_shapes = tuple(_shape(specs[id(tensor)], operation) for tensor in node.input_tensors)
        inner_peak = inner_peak_layer = None
        if find_rule(type(operation)) is None and isinstance(operation, keras.Model):
            arguments = node.arguments
            inner_inputs = keras.tree.flatten(arguments.args[0] if arguments.args else arguments.kwargs["inputs"])
            # Inputs that the outer graph still needs after this call must stay live inside it too.
            pinned = {
                index for index, tensor in enumerate(inner_inputs) if consumers[id(tensor)] > 1 or id(tensor) in kept
            }
            inner = _walk(operation, [specs[id(tensor)] for tensor in inner_inputs], tally.nested, pinned)
            outputs, macs = inner.outputs, inner.macs
            inner_peak, inner_peak_layer = inner.peak, f"{operation.name}/{inner.peak_layer}"
        else:
            args, kwargs = node.arguments.fill_in(specs)
            outputs = _output_specs(operation, args, kwargs, input_shapes)
            macs = layer_macs(operation, input_shapes, tuple(_shape(spec, operation) for spec in outputs))

        output_shapes = [_shape(spec, operation) for spec in outputs]
        tally.record(output_shapes, macs)
        walk.macs += macs

        output_elements = 0
        for tensor, spec, shape in zip(node.outputs, outputs, output_shapes, strict=True):
            specs[id(tensor)] = spec
            walk.sizes[id(tensor)] = math.prod(shape)
            output_elements += walk.sizes[id(tensor)]
        during = live + output_elements
        during_layer = operation.name
        if inner_peak is not None:
            # The nested walk counted this call's inputs itself; add what else the outer graph keeps live.
            nested_during = live - sum(walk.sizes[tensor_id] for tensor_id in input_ids) + inner_peak
            if nested_during > during:
                during, during_layer = nested_during, inner_peak_layer
        if during > walk.peak:
            walk.peak, walk.peak_layer = during, during_layer

        live += output_elements
        for tensor_id in input_ids:
            consumers[tensor_id] -= 1
            if consumers[tensor_id] == 0 and tensor_id not in kept:
                live -= walk.sizes[tensor_id]
        for tensor in node.outputs:
            # An output that nothing in this graph reads (say the unused half of a split) dies at once.
            if consumers[id(tensor)] == 0 and id(tensor) not in kept:
                live -= walk.sizes[id(tensor)]

    walk.outputs = [specs[id(tensor)] for tensor in graph.outputs]
    return walk


def _output_specs(operation, args, kwargs, input_shapes) -> list[keras.KerasTensor]:
    try:
        return keras.tree.flatten(operation.compute_output_spec(*args, **kwargs))
    except Exception as err:
        # Any failure here means the graph cannot run at batch size 1; say which layer, keep the cause.
        raise ModelError(
            f"Cannot infer the output shape of layer '{operation.name}' ({type(operation).__name__}) for input "
            f"shapes {list(input_shapes)} at batch size 1: {err}"
        ) from err


def _shape(spec, operation) -> Shape:
    shape = tuple(spec.shape[1:])
    if any(dim is None for dim in shape):
        raise ModelError(
            f"Layer '{operation.name}' ({type(operation).__name__}) produces a tensor of unknown shape "
            f"{tuple(spec.shape)} even at a fixed input size, so its cost cannot be counted."
        )
    return tuple(int(dim) for dim in shape)


def _shape_to_json(shape: tuple) -> list:
    return [_shape_to_json(dim) if isinstance(dim, tuple) else dim for dim in shape]


def _shape_from_json(shape: list) -> tuple:
    return tuple(_shape_from_json(dim) if isinstance(dim, list) else dim for dim in shape)
