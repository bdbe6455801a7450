"""The (depth, width, resolution) search against budgets."""

import numpy as np
import pytest

from tfscissor.errors import ModelError
from tfscissor.models import build_model
from tfscissor.shrink import compound
from tfscissor.shrink.budget import parse_budget
from tfscissor.shrink.compound import Candidate, _brackets, recalibrate_batch_norm, resized, search

GRID = {"depths": (0, 1), "widths": (1.0, 0.5), "resolutions": (32, 24)}


@pytest.fixture(scope="module")
def model(tiny_data):
    from tfscissor.models.training import train_classifier

    model = build_model("resnet", tiny_data.image_shape, tiny_data.num_classes, widths=(8, 16, 16), seed=0)
    train_classifier(model, tiny_data, epochs=2, learning_rate=3e-3)
    return model


def run(model, tiny_data, budget, **kwargs):
    options = dict(GRID, calibration=64, score_samples=100, top=1, fine_tune_epochs=0, refine_steps=0)
    options.update(kwargs)
    return search(model, resized(tiny_data), parse_budget(budget), **options)


@pytest.mark.slow
def test_every_candidate_the_search_keeps_meets_every_budget(model, tiny_data):
    from tfscissor.analysis import profile_model

    result = run(model, tiny_data, "macs=0.5,params=0.9")
    limits = {"macs": 0.5 * result.original["macs"], "params": 0.9 * result.original["params"]}
    assert len(result.rows) == 8
    for row in result.rows:
        fits = all(row["costs"][axis] <= bound for axis, bound in limits.items())
        assert row["feasible"] == fits, row
        assert ("score" in row) == fits
    assert any(row["feasible"] for row in result.rows) and not all(row["feasible"] for row in result.rows)
    winner = profile_model(result.model)
    assert winner.macs <= limits["macs"] and winner.params <= limits["params"]
    assert result.model.input_shape[1] == result.candidate.resolution
    assert isinstance(result.candidate, Candidate)


@pytest.mark.slow
def test_an_impossible_budget_states_the_smallest_reachable_cost(model, tiny_data):
    with pytest.raises(ModelError, match=r"no candidate of 8 fits the budget macs=0.001.*smallest reachable: macs "):
        run(model, tiny_data, "macs=0.001")


@pytest.mark.slow
def test_a_stopped_search_resumes_without_rebuilding_what_it_measured(model, tiny_data, tmp_path, monkeypatch):
    path = tmp_path / "search.json"
    first = run(model, tiny_data, "macs=0.6", resume=path, top=2)
    builds = []
    original = compound.build_candidate
    monkeypatch.setattr(compound, "build_candidate", lambda *a: builds.append(a[1]) or original(*a))
    again = run(model, tiny_data, "macs=0.6", resume=path)
    assert builds == [again.candidate]  # only the winner, rebuilt to be returned
    assert [r["candidate"] for r in again.rows] == [r["candidate"] for r in first.rows]
    assert [r.get("score") for r in again.rows] == [r.get("score") for r in first.rows]
    # The first run's second fine-tuned candidate: its accuracy is not carried into a run that did not measure it.
    assert sum("accuracy" in r for r in first.rows) == 2 and sum("accuracy" in r for r in again.rows) == 1


@pytest.mark.slow
def test_a_search_with_other_scoring_settings_does_not_resume(model, tiny_data, tmp_path, monkeypatch):
    path = tmp_path / "search.json"
    options = {"depths": (0,), "widths": (1.0, 0.5), "resolutions": (24,), "score": "tune", "tune_images": 64}
    run(model, tiny_data, "macs=0.6", resume=path, learning_rate=1e-3, **options)
    builds = []
    original = compound.build_candidate
    monkeypatch.setattr(compound, "build_candidate", lambda *a: builds.append(a[1]) or original(*a))
    run(model, tiny_data, "macs=0.6", resume=path, learning_rate=1e-2, **options)
    assert len(builds) == 3  # both candidates measured again, then the winner


@pytest.mark.slow
def test_a_cropper_that_alone_breaks_the_budget_is_named(model, tiny_data):
    from tfscissor.analysis import profile_model

    beside = {"macs": 0.7 * profile_model(model).macs}
    with pytest.raises(ModelError, match=r"beside the model \(the cropper\) alone breaks the budget: macs "):
        run(model, tiny_data, "macs=0.6", beside=beside)


def test_recalibrated_batch_norm_holds_the_mean_over_all_images():
    import keras

    inputs = keras.Input((4, 4, 2))
    bn = keras.layers.BatchNormalization(momentum=0.99)
    model = keras.Model(inputs, bn(inputs))
    images = np.random.default_rng(0).normal(3.0, 2.0, (96, 4, 4, 2)).astype(np.float32)
    recalibrate_batch_norm(model, images, batch_size=32)
    np.testing.assert_allclose(bn.moving_mean.numpy(), images.mean(axis=(0, 1, 2)), rtol=1e-5)
    assert bn.momentum == 0.99


def test_brackets_pair_the_widest_width_that_fits_with_the_next_wider_one_that_does_not():
    def row(depth, width, resolution, feasible):
        return {"depth": depth, "width": width, "resolution": resolution, "feasible": feasible, "costs": {}}

    rows = [
        row(0, 1.0, 32, False),
        row(0, 0.75, 32, False),
        row(0, 0.5, 32, True),
        row(0, 0.25, 32, True),
        row(1, 1.0, 32, True),  # all fit: nothing to refine
        row(0, 1.0, 24, False),  # none fits: nothing to refine
        {"depth": 2, "width": 1.0, "resolution": 32, "feasible": False, "skipped": "only 1 removable blocks"},
    ]
    assert list(_brackets(rows)) == [(0, 32, 0.5, 0.75)]


@pytest.mark.slow
def test_refinement_bisects_the_width_to_the_edge_of_the_budget(model, tiny_data):
    result = run(model, tiny_data, "macs=0.6", refine_steps=3)
    bound = 0.6 * result.original["macs"]
    grid = [row for row in result.rows if row["stage"] == "grid"]
    refined = [row for row in result.rows if row["stage"] == "refine"]
    assert [row["candidate"] for row in grid] == [str(c) for c in _grid()]
    assert refined, "a macs=0.6 budget leaves a width bracket to refine"
    for depth, resolution, fits, over in _brackets(grid):
        steps = [row for row in refined if (row["depth"], row["resolution"]) == (depth, resolution)]
        assert len(steps) == 3
        for row in steps:  # each step halves the bracket the previous steps left
            assert row["width"] == round((fits + over) / 2, 4)
            fits, over = (row["width"], over) if row["feasible"] else (fits, row["width"])
        edge = max(
            row["costs"]["macs"]
            for row in steps + grid
            if row["feasible"] and row["depth"] == depth and row["resolution"] == resolution
        )
        widest = max(
            row["costs"]["macs"]
            for row in grid
            if row["feasible"] and row["depth"] == depth and row["resolution"] == resolution
        )
        assert widest < edge <= bound  # closer to the budget than any grid width
    for row in result.rows:
        assert row["feasible"] == (row["costs"]["macs"] <= bound)
        assert ("score" in row) == row["feasible"]


@pytest.mark.slow
def test_costs_beside_the_model_count_against_the_budget(model, tiny_data):
    alone = run(model, tiny_data, "macs=0.6")
    cropper = {"macs": 0.2 * alone.original["macs"]}
    together = run(model, tiny_data, "macs=0.6", beside=cropper)
    for a, b in zip(alone.rows, together.rows, strict=True):
        assert b["costs"]["macs"] == a["costs"]["macs"] + cropper["macs"]
        assert b["feasible"] == (b["costs"]["macs"] <= 0.6 * alone.original["macs"])
    assert sum(r["feasible"] for r in together.rows) < sum(r["feasible"] for r in alone.rows)


def test_stages_in_turn_add_their_costs_and_share_one_arena():
    from tfscissor.shrink import combine_costs

    costs = {"macs": 10, "params": 5, "bytes": 100, "arena": 2048, "latency": 1.5}
    cropper = {"macs": 2, "params": 1, "bytes": 30, "arena": 4096, "latency": 0.25}
    assert combine_costs(costs, cropper) == {"macs": 12, "params": 6, "bytes": 130, "arena": 4096, "latency": 1.75}


def _grid():
    import itertools

    return [Candidate(d, float(w), r) for d, w, r in itertools.product(*GRID.values())]


@pytest.mark.slow
def test_only_the_best_scored_pairs_are_refined(model, tiny_data):
    result = run(model, tiny_data, "macs=0.6", refine_steps=1, refine_pairs=1)
    grid = [row for row in result.rows if row["stage"] == "grid"]
    refined = [row for row in result.rows if row["stage"] == "refine"]
    pairs = [(d, r) for d, r, *_ in _brackets(grid)]
    scores = {
        pair: max(row["score"] for row in grid if row["feasible"] and (row["depth"], row["resolution"]) == pair)
        for pair in pairs
    }
    assert [(row["depth"], row["resolution"]) for row in refined] == [max(pairs, key=scores.get)]


@pytest.mark.slow
@pytest.mark.parametrize("criterion", ["relevance", "bypass"])
def test_depth_removes_the_lowest_scored_block_by_the_chosen_criterion(model, tiny_data, criterion):
    from tfscissor.shrink import removal_order, score_blocks

    options = {"depths": (1,), "widths": (1.0,), "resolutions": (32,), "calibration": 64}
    result = run(model, tiny_data, "macs=1.0", depth_criterion=criterion, **options)
    calib = np.sort(np.random.default_rng(0).permutation(len(tiny_data.train))[:64])
    scores = score_blocks(model, tiny_data.train.images[calib], tiny_data.train.labels[calib], criterion)
    first = removal_order(model, scores)[0]
    names = {layer.name for layer in result.model.layers}
    assert first not in names and set(scores) - {first} <= names


@pytest.mark.slow
def test_the_tune_score_trains_each_candidate_briefly_before_scoring(model, tiny_data):
    from tfscissor.shrink.compound import build_candidate, score_tune
    from tfscissor.shrink.depth import removal_order, score_blocks

    bn = run(model, tiny_data, "macs=0.6", depths=(0,), widths=(1.0,))
    tuned = run(model, tiny_data, "macs=0.6", depths=(0,), widths=(1.0,), score="tune", tune_images=128)
    [bn_row], [tuned_row] = [[r for r in x.rows if r["feasible"]] for x in (bn, tuned)]
    assert tuned_row["candidate"] == bn_row["candidate"] == "d-0 w1 r24"
    # By hand: the same candidate, calibration and tune images, then score_tune.
    rng = np.random.default_rng(0)
    data = resized(tiny_data)(24)
    calib = np.sort(rng.permutation(len(data.train))[:64])
    tune = np.sort(rng.permutation(len(data.train))[:128])
    full = resized(tiny_data)(32)  # blocks and channels are measured at the model's own size
    order = removal_order(model, score_blocks(model, full.train.images[calib]))
    built = build_candidate(model, Candidate(0, 1.0, 24), order, full.train.images[calib])
    val = data.val.__class__(data.val.images[:100], data.val.labels[:100])
    expected = score_tune(built, data, data.train.images[calib], val, tune=tune, learning_rate=1e-3, seed=0)
    assert tuned_row["score"] == pytest.approx(expected, abs=1e-9)
    # The short epoch trains a throwaway copy: the winner (not fine-tuned here) is the untrained candidate.
    fresh = build_candidate(model, Candidate(0, 1.0, 24), order, full.train.images[calib])
    untrained = compound.score_bn(fresh, data, data.train.images[calib], data.val)
    assert tuned_row["accuracy"] == pytest.approx(untrained, abs=1e-9)


@pytest.mark.slow
def test_an_unknown_score_is_refused(model, tiny_data):
    from tfscissor.errors import UsageError

    with pytest.raises(UsageError, match="unknown score 'loss': use bn, tune"):
        run(model, tiny_data, "macs=0.6", score="loss")
