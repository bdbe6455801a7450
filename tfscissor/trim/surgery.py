"""Rebuild a model with fewer channels: a new model with sliced weights; the input model is never touched."""

import numpy as np

from tfscissor.models.graph import rebuild_graph


class SurgeryPlan:
    """The channels (graph elements) to remove; filled by :meth:`ChannelGroup.apply`."""

    def __init__(self):
        self.removed = set()

    def remove(self, roots):
        self.removed.update(int(root) for root in roots)


def rebuild(graph, plan):
    """Return a copy of ``graph.model`` without the channels ``plan`` removes, weights copied and sliced."""

    def kept(elements):
        return np.flatnonzero([graph.root(int(e)) not in plan.removed for e in elements])

    slices = {}
    for node in graph.nodes:
        keep_in = [kept(elements) for elements in node.inputs]
        keep_out = [kept(elements) for elements in node.outputs]
        changed = any(
            len(keep) < len(elements)
            for keep, elements in zip(keep_in + keep_out, node.inputs + node.outputs, strict=True)
        )
        if changed:
            slices[node.layer.name] = (node.handler, keep_in, keep_out)

    def clone(layer):
        config = layer.get_config()
        if layer.name in slices:
            handler, keep_in, keep_out = slices[layer.name]
            config = handler.slice_config(layer, config, keep_in, keep_out)
        return type(layer).from_config(config)

    model, clones = rebuild_graph(graph.model, clone)
    for original, copy in clones.items():
        weights = original.get_weights() if hasattr(original, "get_weights") else []
        if not weights:
            continue
        if original.name in slices:
            handler, keep_in, keep_out = slices[original.name]
            weights = handler.slice_weights(original, weights, keep_in, keep_out)
        copy.set_weights(weights)
    return model
