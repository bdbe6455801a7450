"""Channel groups: the layers whose channels must be removed together, read from the dependency graph.

A group is every channel made by a set of producers that are tied together: one convolution and its batch
norm and activation in a plain chain; every convolution that writes into a residual stream in a ResNet
stage; a depthwise block's expansion, depthwise and squeeze-and-excitation convolutions in MobileNet and
EfficientNet. Its ``apply`` removes channels from all of them and from every layer that reads them, at the
right positions (after a Concatenate or a Flatten as well).
"""

from dataclasses import dataclass

import numpy as np

from tfscissor.trim.dependency import ChannelGraph


@dataclass(frozen=True)
class Member:
    """Where a group's channels sit in one layer's output: ``positions`` on its last axis, ``channels`` the
    group channel at each of them."""

    layer: str
    positions: np.ndarray
    channels: np.ndarray


@dataclass(frozen=True, eq=False)
class ChannelGroup:
    """Channels that are removed together, and every layer they touch.

    ``producers`` are the layers that make the channels (the l1 criterion reads their kernels); ``taps`` are
    the layers whose outputs the next convolutions or dense layers read (the data-driven criteria score a
    channel by what is measured there); ``layers`` lists every layer whose shape changes with the group.
    """

    name: str
    roots: np.ndarray  # the graph element of each group channel
    producers: tuple
    taps: tuple
    layers: tuple

    @property
    def channels(self):
        return len(self.roots)

    def apply(self, plan, keep):
        """Record in ``plan`` that only group channels ``keep`` survive. Refuses to empty the group: a layer
        with no channels is not a layer."""
        keep = np.unique(np.asarray(keep, dtype=np.int64))
        if keep.size == 0:
            raise ValueError(f"group {self.name!r} would lose all {self.channels} channels: keep at least one")
        if keep[0] < 0 or keep[-1] >= self.channels:
            raise ValueError(f"group {self.name!r} has channels 0..{self.channels - 1}, got {keep.tolist()}")
        plan.remove(np.delete(self.roots, keep))


def find_groups(model, exclude=()):
    """Every removable channel group of ``model`` (a flat functional model), in graph order.

    ``exclude`` names layers whose output channels must stay. Raises ModelError naming the first layer
    that trimming cannot handle, with the ``--exclude`` that makes it pass.
    """
    return groups_of(ChannelGraph(model, exclude))


def groups_of(graph):
    producers = [node for node in graph.nodes if node.handler.consumes(node.layer)]
    is_producer = {id(node) for node in producers}
    group_of_root, order = _assign_groups(graph, producers)
    members = {key: {"producers": [], "taps": {}, "layers": []} for key in order}
    channel_index = {}
    for roots in order.values():
        for index, root in enumerate(roots):
            channel_index[root] = index

    def locate(elements):
        roots = graph.roots(elements)
        found = {}
        for position, root in enumerate(roots):
            key = group_of_root.get(int(root))
            if key is not None:
                found.setdefault(key, []).append((position, channel_index[int(root)]))
        return {key: (np.array([p for p, _ in pairs]), np.array([c for _, c in pairs])) for key, pairs in found.items()}

    for node in graph.nodes:
        touched = set()
        for elements in node.outputs:
            for key, (positions, channels) in locate(elements).items():
                touched.add(key)
                if id(node) in is_producer:
                    members[key]["producers"].append(Member(node.layer.name, positions, channels))
        for source, elements in zip(node.input_sources, node.inputs, strict=True):
            for key, (positions, channels) in locate(elements).items():
                touched.add(key)
                if id(node) in is_producer:
                    tap = graph.measured_at(source)
                    members[key]["taps"].setdefault(tap, Member(tap, positions, channels))
        for key in touched:
            members[key]["layers"].append(node.layer.name)
    return [
        ChannelGroup(
            name=members[key]["producers"][0].layer,
            roots=np.array(roots, dtype=np.int64),
            producers=tuple(members[key]["producers"]),
            taps=tuple(members[key]["taps"].values()),
            layers=tuple(members[key]["layers"]),
        )
        for key, roots in order.items()
    ]


def _assign_groups(graph, producers):
    """Map each removable element root to a group key, and each key to its roots in order of appearance.

    Channels made by one producer belong to one group; groups that share a channel (through an Add, say)
    are one group.
    """
    parent = {}

    def find(key):
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    first_seen = []
    for node in producers:
        roots = [int(r) for r in graph.roots(node.outputs[0]) if not graph.is_frozen(int(r))]
        for root in roots:
            if root not in parent:
                parent[root] = root
                first_seen.append(root)
        for root in roots[1:]:
            a, b = find(roots[0]), find(root)
            if a != b:
                parent[b] = a
    group_of_root, order = {}, {}
    for root in first_seen:
        key = find(root)
        group_of_root[root] = key
        order.setdefault(key, []).append(root)
    return group_of_root, order
