"""The channel dependency graph of a functional model, from which channel groups are read.

Every position of every tensor's last axis is labelled with an *element*; the layer handlers
(:mod:`tfscissor.trim.handlers`) say how elements flow through each layer, and tie elements that must be
removed together into one set (a union-find). One such set is one removable channel, whatever number of
layers and positions it spans: a residual stream's channel ``c`` is one set across every Add of the stage.
Elements that reach the model's outputs or inputs, or pass through a layer that must keep its channels, are
pinned and never removed.
"""

from collections import Counter
from dataclasses import dataclass

import numpy as np

from tfscissor.errors import ModelError
from tfscissor.models.graph import functional_graph, nodes_in_order
from tfscissor.trim.callback import ACTIVATION_LAYERS
from tfscissor.trim.handlers import Carrier, Frozen, channel_width, handler_for


@dataclass(frozen=True, eq=False)
class NodeChannels:
    """One call of a layer: its handler and the element array of each input and output tensor."""

    layer: object
    handler: object
    inputs: tuple
    outputs: tuple
    input_sources: tuple  # name of the layer that produced each input tensor


class ChannelGraph:
    """The elements of every tensor of ``model`` (a flat functional model) and how they are tied.

    ``exclude`` names layers whose output channels must stay; a layer without a handler must be excluded
    (then its input channels stay too), or the graph refuses the model with an error naming the layer.
    """

    def __init__(self, model, exclude=()):
        self.model = model
        self._parent = []
        self._frozen = []
        self._elements = {}  # id of a tensor -> its element array
        graph = functional_graph(model)
        self.exclude = set(exclude)
        names = {operation.name for operation in graph._operations}
        unknown = self.exclude - names
        if unknown:
            raise ModelError(
                f"excluded layers not in {model.name}: {', '.join(sorted(unknown))}: check the layer names"
            )
        nodes = nodes_in_order(graph)
        # Calls in this graph, not the layer's inbound nodes: a Sequential model loaded from a file has called
        # each layer once per partial build, and a layer may also serve models outside this one.
        self._calls = Counter(id(node.operation) for node in nodes)
        self.nodes = [self._propagate(node, graph) for node in nodes]
        self._by_name = {node.layer.name: node for node in self.nodes}
        self._readers = {}
        for node in self.nodes:
            for source in node.input_sources:
                self._readers.setdefault(source, []).append(node.layer)
        for tensor in graph.outputs:
            self.freeze(self._elements[id(tensor)])

    # --- union-find over elements ---

    def new_elements(self, count, frozen=False):
        start = len(self._parent)
        self._parent.extend(range(start, start + count))
        self._frozen.extend([frozen] * count)
        return np.arange(start, start + count, dtype=np.int64)

    def root(self, element):
        parent = self._parent
        while parent[element] != element:
            parent[element] = parent[parent[element]]
            element = parent[element]
        return element

    def roots(self, elements):
        return np.fromiter((self.root(int(e)) for e in elements), dtype=np.int64, count=len(elements))

    def tie(self, first, second):
        """Make position ``i`` of ``first`` and of ``second`` one channel, for every ``i``."""
        for a, b in zip(first, second, strict=True):
            ra, rb = self.root(int(a)), self.root(int(b))
            if ra != rb:
                self._parent[rb] = ra
                self._frozen[ra] = self._frozen[ra] or self._frozen[rb]

    def freeze(self, elements):
        for element in elements:
            self._frozen[self.root(int(element))] = True

    def is_frozen(self, element):
        return self._frozen[self.root(int(element))]

    def stem(self):
        """The layers that make new channels with no such layer before them: those that read the model's input
        (through rescaling, padding and the like)."""
        after_consumer, stems = set(), []
        for node in self.nodes:
            upstream = [self._by_name[source] for source in node.input_sources]
            if any(up.layer.name in after_consumer or up.handler.consumes(up.layer) for up in upstream):
                after_consumer.add(node.layer.name)
            elif node.handler.consumes(node.layer):
                stems.append(node)
        return stems

    def node(self, name):
        """The node of layer ``name``."""
        return self._by_name[name]

    def readers(self, name):
        """The layers that read layer ``name``'s output, one entry per call."""
        return self._readers.get(name, [])

    def measured_at(self, source):
        """Where to measure the tensor made by layer ``source``: the activation before it, if only weightless
        layers that keep zeros zero (pooling, padding, dropout) lie between, since relevance is an activation's
        output. Their positions are the same, as such layers carry channels one to one."""
        node = self._by_name[source]
        while not isinstance(node.layer, ACTIVATION_LAYERS):
            if type(node.handler) is not Carrier or node.layer.weights or len(node.input_sources) != 1:
                return source
            node = self._by_name[node.input_sources[0]]
        return node.layer.name

    # --- building ---

    def _propagate(self, node, graph):
        layer = node.operation
        if node.is_input:
            outputs = [self.new_elements(channel_width(tensor), frozen=True) for tensor in node.outputs]
            for tensor, elements in zip(node.outputs, outputs, strict=True):
                self._elements[id(tensor)] = elements
            return NodeChannels(layer, Frozen(), (), tuple(outputs), ())
        handler = handler_for(layer)
        if handler is None and layer.name not in self.exclude:
            raise ModelError(
                f"layer {layer.name!r} ({type(layer).__name__}) is not understood by trimming: exclude it "
                f"(--exclude {layer.name}) to keep its channels, or register a handler for "
                f"{type(layer).__name__} with tfscissor.trim.register_handler"
            )
        shared = self._calls[id(layer)] > 1
        if shared and layer.name not in self.exclude and not isinstance(handler, Frozen):
            raise ModelError(
                f"layer {layer.name!r} is called more than once (a shared layer): its channels cannot be trimmed "
                f"per call; exclude it (--exclude {layer.name})"
            )
        if handler is None or shared:
            # Its weights serve every call, so neither its inputs nor its outputs may lose channels.
            handler = Frozen()
        inputs = [self._elements[id(tensor)] for tensor in node.input_tensors]
        outputs = handler.propagate(layer, node, inputs, self)
        if layer.name in self.exclude:
            for elements in outputs:
                self.freeze(elements)
        for tensor, elements in zip(node.outputs, outputs, strict=True):
            if len(elements) != channel_width(tensor):
                raise ModelError(
                    f"the handler of {layer.name!r} gave {len(elements)} channels for an output of "
                    f"{channel_width(tensor)}: fix the handler registered for {type(layer).__name__}"
                )
            self._elements[id(tensor)] = elements
        sources = tuple(tensor._keras_history.operation.name for tensor in node.input_tensors)
        return NodeChannels(layer, handler, tuple(inputs), tuple(outputs), sources)
