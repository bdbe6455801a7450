"""Rebuild a model with fewer channels: a new model with sliced weights; the input model is never touched."""

import numpy as np

from tfscissor.models.graph import rebuild_graph


class SurgeryPlan:
    """The channels (graph elements) to remove; filled by :meth:`ChannelGroup.apply`."""

    def __init__(self):
        self.removed = set()

    def remove(self, roots):
        self.removed.update(int(root) for root in roots)

    @classmethod
    def keeping(cls, groups, kept):
        """The plan that keeps, of each of ``groups``, the channels ``kept[group.name]``."""
        plan = cls()
        for group in groups:
            group.apply(plan, kept[group.name])
        return plan


def rebuild(graph, plan, statistics=None):
    """Return a copy of ``graph.model`` without the channels ``plan`` removes, weights copied and sliced.

    With ``statistics`` (measured at the tensors the consuming layers read), each convolution or dense layer
    that loses input channels gets their mean contribution added to its bias ("mean replacement"): a
    removed channel is then replaced by its average instead of by zero, which is what removing it would
    otherwise do to every later layer's input statistics. A layer without a bias that feeds one batch norm
    alone has the shift folded into the batch norm's moving mean instead; any other gains a bias. Dead
    channels have a mean of zero, so removing them changes nothing.
    """
    shifts = _compensation(graph, plan, statistics) if statistics is not None else {}
    biases, moving_means = _absorb(graph, shifts)
    slices = {
        name: (graph.node(name).handler, keep_in, keep_out)
        for name, (keep_in, keep_out) in kept_positions(graph, plan).items()
    }

    def clone(layer):
        config = layer.get_config()
        if layer.name in slices:
            handler, keep_in, keep_out = slices[layer.name]
            config = handler.slice_config(layer, config, keep_in, keep_out)
        if layer.name in biases:
            config = {**config, "use_bias": True}
        return type(layer).from_config(config)

    model, clones = rebuild_graph(graph.model, clone)
    for original, copy in clones.items():
        weights = original.get_weights() if hasattr(original, "get_weights") else []
        if not weights:
            continue
        # Shifts are per original channel: applied before slicing, so they are sliced with the weights.
        if original.name in biases:
            kernel, *bias = weights
            weights = [kernel, (bias[0] if bias else 0.0) + biases[original.name]]
        if original.name in moving_means:
            index = next(i for i, w in enumerate(original.weights) if w is original.moving_mean)
            weights[index] = weights[index] - moving_means[original.name]
        if original.name in slices:
            handler, keep_in, keep_out = slices[original.name]
            weights = handler.slice_weights(original, weights, keep_in, keep_out)
        copy.set_weights(weights)
    return model


def kept_positions(graph, plan):
    """Layer name -> (kept positions of each input, of each output) for every layer whose channels ``plan``
    changes: the indices into the untrimmed layer's tensors that survive."""

    def kept(elements):
        return np.flatnonzero([graph.root(int(e)) not in plan.removed for e in elements])

    positions = {}
    for node in graph.nodes:
        keep_in = [kept(elements) for elements in node.inputs]
        keep_out = [kept(elements) for elements in node.outputs]
        changed = any(
            len(keep) < len(elements)
            for keep, elements in zip(keep_in + keep_out, node.inputs + node.outputs, strict=True)
        )
        if changed:
            positions[node.layer.name] = (keep_in, keep_out)
    return positions


def sole_batch_norm(graph, name):
    """The channel batch norm that alone reads layer ``name``'s output, or None."""
    readers = graph.readers(name)
    return readers[0] if len(readers) == 1 and _is_channel_batch_norm(readers[0]) else None


def _absorb(graph, shifts):
    """Split the shifts into those added to a layer's bias and those subtracted from the moving mean of the
    batch norm that alone reads a layer without a bias (conv -> BN keeps its shape)."""
    biases, moving_means = {}, {}
    for name, shift in shifts.items():
        norm = sole_batch_norm(graph, name)
        if not graph.model.get_layer(name).use_bias and norm is not None:
            moving_means[norm.name] = shift
        else:
            biases[name] = shift
    return biases, moving_means


def _is_channel_batch_norm(layer):
    import keras

    return isinstance(layer, keras.layers.BatchNormalization) and layer.axis in (-1, len(layer.input.shape) - 1)


def _compensation(graph, plan, statistics):
    """Layer name -> what its removed input channels added to each output on average: the mean activation
    of each removed input times the kernel weights summed over the kernel window (exact away from the
    zero-padded border)."""
    result = {}
    for node in graph.nodes:
        layer = node.layer
        if not (node.handler.consumes(layer) and hasattr(layer, "kernel")) or len(node.inputs) != 1:
            continue
        removed = np.flatnonzero([graph.root(int(e)) in plan.removed for e in node.inputs[0]])
        tap = graph.measured_at(node.input_sources[0])
        if removed.size == 0 or tap not in statistics:
            continue
        kernel = np.asarray(layer.kernel)
        per_input = kernel.reshape(-1, kernel.shape[-2], kernel.shape[-1]).sum(axis=0)
        shift = statistics[tap].mean[removed] @ per_input[removed]
        if np.any(shift):  # removing only dead channels changes nothing, not even the bias
            result[layer.name] = shift.astype(kernel.dtype)
    return result
