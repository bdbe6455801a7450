"""What a trim saves, estimated without rebuilding the model: the MACs and parameters of each layer scale
with the fraction of its input and output channels that stay.

The estimate is exact for MACs of convolutions, depthwise convolutions and dense layers (products of input
and output channels), and close for parameters (a bias scales with the outputs alone); the policy checks it
against the rebuilt model's exact count.
"""

import numpy as np


class CostModel:
    def __init__(self, graph, profile):
        self.graph = graph
        self.totals = {"macs": profile.macs, "params": profile.params}
        by_name = {row.name: row for row in profile.layers}
        self._layers = []
        for node in graph.nodes:
            row = by_name.get(node.layer.name)
            if row is None or not (row.macs or row.params) or not node.outputs:
                continue
            inputs = graph.roots(node.inputs[0]) if node.inputs and node.handler.consumes(node.layer) else None
            self._layers.append((row.macs, row.params, inputs, graph.roots(node.outputs[0])))
        self._fixed = {
            "macs": profile.macs - sum(macs for macs, _, _, _ in self._layers),
            "params": profile.params - sum(params for _, params, _, _ in self._layers),
        }

    def fraction(self, removed, metric):
        """The estimated fraction of the original ``metric`` ("macs" or "params") left after removing the
        graph elements ``removed``."""
        removed = np.fromiter(removed, dtype=np.int64)
        index = 0 if metric == "macs" else 1
        total = self._fixed[metric]
        for layer in self._layers:
            share = 1.0 - np.isin(layer[3], removed).mean()
            if layer[2] is not None:
                share *= 1.0 - np.isin(layer[2], removed).mean()
            total += layer[index] * share
        return total / max(self.totals[metric], 1)

    def exact_fraction(self, model, metric):
        from tfscissor.analysis import profile_model

        profile = profile_model(model)
        return (profile.macs if metric == "macs" else profile.params) / max(self.totals[metric], 1)
