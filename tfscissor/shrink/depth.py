"""Depth: residual blocks that can be bypassed, and the surgery that removes them.

A block is an addition ``shortcut + branch`` whose shortcut is an identity (the addition's output has the
shortcut's shape) and whose branch is a sub-graph that reads nothing but the shortcut and feeds nothing but
the addition. Bypassing it replaces the addition's output by the shortcut, so every shape downstream is kept;
what follows the addition (a ReLU in ResNets) stays. The project's ResNet and MobileNetV2 builders and the
identity blocks of ``keras.applications`` ResNet, MobileNetV2 and EfficientNet have this form.

Removal is surgery, as in trimming: a new flat model with the kept layers' weights copied; the input model is
never changed. A block whose branch outputs zeros is removed with unchanged outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras.src.ops import numpy as keras_numpy

from tfscissor.errors import ModelError, UsageError
from tfscissor.models.graph import (
    functional_graph,
    has_nested_models,
    inline_nested,
    model_inputs,
    nodes_in_order,
)

__all__ = [
    "DEPTH_CRITERIA",
    "ResidualBlock",
    "block_relevance",
    "bypass_loss",
    "find_blocks",
    "removal_order",
    "remove_blocks",
    "score_blocks",
]

_ADDS = (keras.layers.Add, keras_numpy.Add)


@dataclass(frozen=True)
class ResidualBlock:
    """A removable block: the addition's name, which of its two inputs is the shortcut, the branch's layers
    (in graph order), the output shape (blocks of one shape form a stage) and the MACs the branch costs."""

    add: str
    shortcut: int
    branch: tuple[str, ...]
    shape: tuple[int, ...]
    macs: int


def _producers(graph):
    """Tensor id -> the node that produces it."""
    return {id(tensor): node for node in nodes_in_order(graph) for tensor in node.outputs}


def _branch(tensor, shortcut, producers):
    """The nodes between ``shortcut`` and ``tensor`` (exclusive, inclusive), or None if the branch reads
    anything but the shortcut (another tensor, a model input)."""
    found, stack = {}, [tensor]
    while stack:
        current = stack.pop()
        if current is shortcut:
            continue
        node = producers.get(id(current))
        if node is None or node.is_input:
            return None
        if id(node) not in found:
            found[id(node)] = node
            stack.extend(node.input_tensors)
    return list(found.values())


def find_blocks(model):
    """The residual blocks of ``model`` that can be bypassed (see the module docstring), in graph order.

    Nested models are looked into (their layers are reported by name, as :func:`remove_blocks` sees them).
    """
    from tfscissor.analysis import profile_model

    flat = inline_nested(model) if has_nested_models(model) else model
    graph = functional_graph(flat, "use a functional or Sequential model to find its blocks")
    producers = _producers(graph)
    consumers = {}
    for node in nodes_in_order(graph):
        for tensor in node.input_tensors:
            consumers.setdefault(id(tensor), []).append(node)
    macs = {row.name: row.macs for row in profile_model(flat).layers}
    blocks = []
    for node in nodes_in_order(graph):
        inputs = node.input_tensors
        if not isinstance(node.operation, _ADDS) or len(inputs) != 2:
            continue
        output = node.outputs[0]
        for index, (shortcut, branch_end) in enumerate(((inputs[0], inputs[1]), (inputs[1], inputs[0]))):
            if tuple(shortcut.shape) != tuple(output.shape):
                continue
            branch = _branch(branch_end, shortcut, producers)
            if not branch:
                continue
            members = {id(n) for n in branch} | {id(node)}
            # Single exit: nothing the branch computes is read outside it.
            if any(id(c) not in members for n in branch for t in n.outputs for c in consumers.get(id(t), [])):
                continue
            names = tuple(n.operation.name for n in nodes_in_order(graph) if id(n) in {id(b) for b in branch})
            shape = tuple(int(d) for d in output.shape[1:])
            cost = sum(macs.get(name, 0) for name in names)
            blocks.append(ResidualBlock(node.operation.name, index, names, shape, cost))
            break
    return blocks


def _has_kernel(operation):
    """A convolution or dense layer (normalisations have weights but are no block of their own)."""
    return isinstance(operation, keras.layers.Layer) and any("kernel" in w.name for w in operation.weights)


def _entry_is_a_block(tensor, producers):
    """Whether a stage's entry ``tensor`` (its first removable block's shortcut) comes from a block that stays:
    a residual addition (a projection block), or a convolution with other convolutions before it (a block
    without a shortcut, as MobileNetV2 starts its stages), rather than the model's stem."""
    node = producers.get(id(tensor))
    while node is not None and not node.is_input:
        if isinstance(node.operation, _ADDS) or len(node.input_tensors) != 1:
            return True
        if _has_kernel(node.operation):
            upstream = producers.get(id(node.input_tensors[0]))
            while upstream is not None and not upstream.is_input:
                if _has_kernel(upstream.operation) or len(upstream.input_tensors) != 1:
                    return True
                upstream = producers.get(id(upstream.input_tensors[0]))
            return False
        node = producers.get(id(node.input_tensors[0]))
    return False


def _check_stages(graph, removing, blocks):
    """Refuse to empty a stage: the removable blocks of one output shape, plus its entry block if it has one."""
    producers = _producers(graph)
    adds = {node.operation.name: node for node in nodes_in_order(graph) if isinstance(node.operation, _ADDS)}
    for shape in dict.fromkeys(block.shape for block in removing):
        stage = [block for block in blocks if block.shape == shape]
        shortcut = adds[stage[0].add].input_tensors[stage[0].shortcut]
        kept = len(stage) - sum(block.shape == shape for block in removing)
        if kept == 0 and not _entry_is_a_block(shortcut, producers):
            raise ModelError(
                f"removing {', '.join(b.add for b in removing if b.shape == shape)} would leave no block at "
                f"{'x'.join(map(str, shape))}: keep at least one block per stage"
            )


def removal_order(model, relevance, blocks=None):
    """Block names in the order depth removes them: lowest ``relevance`` first, skipping any block whose
    removal (with those before it) would empty a stage."""
    flat = inline_nested(model) if has_nested_models(model) else model
    blocks = find_blocks(flat) if blocks is None else blocks
    graph = functional_graph(flat)
    chosen = []
    for block in sorted(blocks, key=lambda b: relevance[b.add]):
        try:
            _check_stages(graph, [*chosen, block], blocks)
        except ModelError:
            continue
        chosen.append(block)
    return [block.add for block in chosen]


def remove_blocks(model, names, keep_one_per_stage=True):
    """A new model without the blocks whose additions are named in ``names`` (weights copied).

    With ``keep_one_per_stage``, removing every block of a stage (the blocks whose outputs share a shape,
    including any the search could not bypass, such as a projection block) is refused.
    """
    flat = inline_nested(model) if has_nested_models(model) else model
    blocks = {block.add: block for block in find_blocks(flat)}
    names = list(dict.fromkeys(names))
    unknown = [name for name in names if name not in blocks]
    if unknown:
        raise UsageError(
            f"{', '.join(unknown)} of model {model.name} is not a removable block: use the names find_blocks gives "
            f"({', '.join(blocks) or 'none'})"
        )
    graph = functional_graph(flat)
    if keep_one_per_stage:
        _check_stages(graph, [blocks[name] for name in names], list(blocks.values()))
    bypass = {name: blocks[name].shortcut for name in names}
    bypass.update({layer: None for name in names for layer in blocks[name].branch})
    return inline_nested(flat, bypass)


def block_relevance(model, images, blocks=None, batch_size=64):
    """How much each block's branch adds to its shortcut on representative ``images``: the mean absolute
    branch output over the mean absolute shortcut, a dict {addition name: ratio}.

    A branch that adds little relative to the stream it joins is the cheapest to bypass: a zeroed branch
    scores 0 and its removal changes nothing.
    """
    flat = inline_nested(model) if has_nested_models(model) else model
    blocks = find_blocks(flat) if blocks is None else blocks
    if not blocks:
        return {}
    graph = functional_graph(flat)
    adds = {node.operation.name: node for node in nodes_in_order(graph) if isinstance(node.operation, _ADDS)}
    taps = []
    for block in blocks:
        inputs = adds[block.add].input_tensors
        taps += [inputs[1 - block.shortcut], inputs[block.shortcut]]
    probe = keras.Model(model_inputs(graph), taps)
    sums = np.zeros(len(taps))
    for start in range(0, len(images), batch_size):
        outputs = probe(np.asarray(images[start : start + batch_size], np.float32), training=False)
        sums += [float(keras.ops.sum(keras.ops.abs(out))) for out in outputs]
    branch, shortcut = sums[0::2], sums[1::2]
    ratios = np.divide(branch, shortcut, out=np.full(len(blocks), np.inf), where=shortcut > 0)
    return {block.add: float(ratio) for block, ratio in zip(blocks, ratios, strict=True)}


def bypass_loss(model, images, labels, blocks=None, batch_size=64):
    """How much bypassing each block alone raises the cross-entropy on ``images`` and ``labels``, a dict
    {addition name: loss with the block removed minus the model's loss}.

    Costlier than :func:`block_relevance` (one surgery and one pass per block) and it needs labels, but it
    measures what removal does to the prediction rather than to one block's activations. A block whose
    branch outputs zeros scores 0. The model's outputs must be class probabilities (a softmax), as the
    classifiers tfscissor builds and trains give.
    """
    flat = inline_nested(model) if has_nested_models(model) else model
    blocks = find_blocks(flat) if blocks is None else blocks
    images, labels = np.asarray(images, np.float32), np.asarray(labels)

    def loss(candidate):
        total = 0.0
        for start in range(0, len(images), batch_size):
            probabilities = candidate(images[start : start + batch_size], training=False)
            rows = keras.ops.convert_to_numpy(probabilities)[
                np.arange(len(probabilities)), labels[start : start + batch_size]
            ]
            total += float(-np.log(np.clip(rows, 1e-7, 1.0)).sum())
        return total / len(images)

    before = loss(flat)
    return {block.add: loss(remove_blocks(flat, [block.add], keep_one_per_stage=False)) - before for block in blocks}


def _relevance(model, images, labels):
    return block_relevance(model, images)


# How blocks are ranked for removal: name -> function(model, images, labels) -> {addition name: score}.
DEPTH_CRITERIA = {"relevance": _relevance, "bypass": bypass_loss}


def score_blocks(model, images, labels=None, criterion="relevance"):
    """Each removable block's score by ``criterion`` (a name in :data:`DEPTH_CRITERIA`): the lower, the
    sooner :func:`removal_order` removes it."""
    if criterion not in DEPTH_CRITERIA:
        raise UsageError(f"unknown depth criterion {criterion!r}: use {', '.join(DEPTH_CRITERIA)}")
    if criterion == "bypass" and labels is None:
        raise UsageError("the bypass depth criterion needs labels for its images")
    return DEPTH_CRITERIA[criterion](model, images, labels)
