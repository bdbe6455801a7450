"""Channel groups: the layers whose channels must be removed together, found from the functional graph.

This version understands chains: a producer (Conv2D, Dense) whose output flows through layers that carry
channels one-to-one (batch norm, activations, pooling, dropout, padding) into consumers (the next Conv2D or
Dense). A branch that ties channels of several producers (Add, Concatenate), a Flatten or Reshape, or a
layer class with no registered slicer stops the search with an error naming the layer.
"""

from dataclasses import dataclass

import numpy as np

from tfscissor.errors import ModelError
from tfscissor.trim.callback import ACTIVATION_LAYERS
from tfscissor.trim.slicers import slicer_for


@dataclass(frozen=True)
class ChannelGroup:
    """One producer's output channels and every layer they pass through or feed.

    ``tap`` is the layer whose output is measured for relevance: the last activation on the path, or the
    last carrying layer if the path has no activation.
    """

    producer: str
    carriers: tuple
    consumers: tuple
    tap: str
    channels: int

    @property
    def layers(self):
        return (self.producer, *self.carriers, *self.consumers)

    def apply(self, plan, keep):
        """Record in ``plan`` that only channels ``keep`` of this group survive.

        Refuses to empty the group: a layer with no channels is not a layer.
        """
        keep = np.unique(np.asarray(keep, dtype=np.int64))
        if keep.size == 0:
            raise ValueError(f"group {self.producer!r} would lose all {self.channels} channels: keep at least one")
        if keep[0] < 0 or keep[-1] >= self.channels:
            raise ValueError(f"group {self.producer!r} has channels 0..{self.channels - 1}, got {keep.tolist()}")
        plan.keep_outputs(self.producer, keep)
        for name in self.carriers:
            plan.keep_outputs(name, keep)
        for name in self.consumers:
            plan.keep_inputs(name, keep)


def _consumers(model):
    """Layer name -> names of the layers that take its output, from the functional graph."""
    result = {layer.name: [] for layer in model.layers}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                result[tensor._keras_history.operation.name].append(layer.name)
    return {name: sorted(set(names)) for name, names in result.items()}


def find_groups(model, exclude=()):
    """Every prunable channel group of ``model``, in graph order.

    A producer is skipped when it is listed in ``exclude`` or when its channels reach the model output (the
    classes are never removed). Raises ModelError naming the first layer that this version cannot handle.
    """
    exclude = set(exclude)
    unknown = exclude - {layer.name for layer in model.layers}
    if unknown:
        raise ModelError(f"excluded layers not in {model.name}: {', '.join(sorted(unknown))}: check the layer names")
    consumers_of = _consumers(model)
    outputs = {tensor._keras_history.operation.name for tensor in model.outputs}
    groups = []
    for layer in model.layers:
        slicer = slicer_for(layer)
        if slicer is None or slicer.role != "produce" or layer.name in exclude:
            continue
        group = _trace(model, layer, consumers_of, outputs)
        if group is not None:
            groups.append(group)
    return groups


def _trace(model, producer, consumers_of, outputs):
    carriers, consumers, tap = [], [], None
    frontier = [producer.name]
    while frontier:
        name = frontier.pop()
        if name in outputs:
            return None  # the channels are model outputs (the classes): never trimmed
        for next_name in consumers_of[name]:
            layer = model.get_layer(next_name)
            slicer = slicer_for(layer)
            if slicer is None:
                raise ModelError(
                    f"layer {next_name!r} ({type(layer).__name__}) after {producer.name!r} is not understood by "
                    f"trimming in this version (Conv-BN-activation chains): exclude {producer.name!r} "
                    f"(--exclude {producer.name} on the command line)"
                )
            if slicer.role == "carry":
                carriers.append(next_name)
                if isinstance(layer, ACTIVATION_LAYERS) or tap is None:
                    tap = next_name
                frontier.append(next_name)
            else:
                consumers.append(next_name)
    return ChannelGroup(
        producer=producer.name,
        carriers=tuple(carriers),
        consumers=tuple(sorted(consumers)),
        tap=tap or producer.name,
        channels=int(producer.output.shape[-1]),
    )
