"""What keeps a trimmed model alive: the taylor saliency, layer limits, the protected stem, sensitivity,
batch-norm re-estimation, distillation and seeds (issue 15)."""

import keras
import numpy as np
import pytest

from tfscissor.errors import UsageError
from tfscissor.models import build_model, load_model, save_model
from tfscissor.models.training import distillation_loss, evaluate_classifier, train_classifier
from tfscissor.trim import ChannelGraph, collect_statistics, find_groups, trim_classifier
from tfscissor.trim.groups import groups_of
from tfscissor.trim.policy import recalibrate_batch_norm
from tfscissor.trim.saliency import collect_saliency
from tfscissor.trim.sensitivity import classification_loss, sensitivity_scores
from tfscissor.trim.stage import run_trim, stale_batch_norms
from tfscissor.trim.surgery import SurgeryPlan, rebuild

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_resnet(tiny_data, tmp_path_factory):
    """A small ResNet (stem, two stages of one basic block) trained on ``tiny_data``."""
    model = build_model("resnet", tiny_data.image_shape, tiny_data.num_classes, blocks=(1, 1), widths=(16, 32))
    train_classifier(model, tiny_data, epochs=8, batch_size=32, learning_rate=3e-3)
    path = tmp_path_factory.mktemp("models") / "resnet.keras"
    save_model(model, path)
    return path


def _quiet_but_vital(model, images, labels, count=8, scale=1e-3):
    """The same function, with the ``count`` channels of the last residual stream that matter most to the loss
    made ``scale`` times quieter: both batch norms that write them scale them down, the dense head reads them
    back up. Such rescalings are what training leaves behind; the loudness of a channel is not its worth."""
    name = "stage2_block1_proj_conv"
    scores = trim_classifier(model, images, labels, criterion="taylor", ratio=0.0).scores[name]
    vital = np.argsort(-scores)[:count]
    for bn in ("stage2_block1_proj_bn", "stage2_block1_2_bn"):
        layer = model.get_layer(bn)
        gamma, beta, mean, variance = layer.get_weights()
        gamma[vital] *= scale
        beta[vital] *= scale
        layer.set_weights([gamma, beta, mean, variance])
    head = model.get_layer("predictions")
    kernel, bias = head.get_weights()
    kernel[vital] /= scale
    head.set_weights([kernel, bias])
    return model, vital


def test_trimming_a_twentieth_of_a_residual_model_does_not_collapse_it(trained_resnet, tiny_data):
    """The issue's collapse: a tenth of a small ResNet's channels, no fine-tuning, where the channels the head
    depends on most are the quietest in their stream. The paper's relevance removes them first and loses more
    than a tenth of the accuracy; at the stage's defaults (taylor) the model keeps 90% of it."""
    model = load_model(trained_resnet)
    images, labels = tiny_data.train.images[:128], tiny_data.train.labels[:128]
    before = model.predict(tiny_data.val.images, verbose=0)
    model, vital = _quiet_but_vital(model, images, labels)
    np.testing.assert_allclose(model.predict(tiny_data.val.images, verbose=0), before, atol=1e-4)
    accuracy = evaluate_classifier(model, tiny_data.val)
    assert accuracy > 0.45  # well above chance (0.25): the baseline learned something

    by_relevance = trim_classifier(model, images, criterion="relevance", ratio=0.1)
    group = "stage2_block1_proj_conv"
    removed = np.setdiff1d(np.arange(32), by_relevance.kept[group])
    assert len(np.intersect1d(removed, vital)) >= len(vital) // 2  # the loudness ranking takes the vital ones

    result = run_trim(model, tiny_data, ratio=0.1, samples=128)
    report = result.report
    assert report["accuracy_before"] == accuracy
    assert report["accuracy_trimmed"] >= 0.9 * accuracy, report
    assert report["params_after"] < report["params_before"]
    assert "costliest_groups" not in report
    assert classification_loss(by_relevance.model, tiny_data.val.images, tiny_data.val.labels) > classification_loss(
        result.model, tiny_data.val.images, tiny_data.val.labels
    )


def test_a_collapse_is_reported_with_the_groups_that_cost_most(trained_resnet, tiny_data):
    result = run_trim(
        load_model(trained_resnet),
        tiny_data,
        ratio=0.95,
        steps=1,
        max_layer_ratio=1.0,
        protect_stem=False,
        criterion="random",
        samples=64,
    )
    report = result.report
    chance = 1 / tiny_data.num_classes
    assert report["accuracy_trimmed"] - chance < 0.5 * (report["accuracy_before"] - chance), report
    names, increases = zip(*report["costliest_groups"], strict=True)
    assert len(names) == 3 and list(increases) == sorted(increases, reverse=True)
    assert set(names) <= {row["layer"] for row in report["layers"]}


def test_a_model_no_better_than_chance_is_not_reported_as_collapsed(trained_resnet, tiny_data):
    """Labels in another order than the model's: there is no accuracy for surgery to lose, and no costliest
    groups to name (the report's chance lets the command say what is wrong instead)."""
    import dataclasses

    classes = tiny_data.num_classes
    shifted = dataclasses.replace(
        tiny_data, val=dataclasses.replace(tiny_data.val, labels=(tiny_data.val.labels + 1) % classes)
    )
    result = run_trim(load_model(trained_resnet), shifted, ratio=0.5, samples=64, steps=1)
    report = result.report
    assert report["chance"] == 1 / classes
    assert report["accuracy_before"] < report["chance"], report
    assert "costliest_groups" not in report


def _residual(scale):
    """input -> conv a (4 channels) -> 1x1 conv b -> a + b -> ReLU -> pooling -> dense: channel 0 of a and b
    is scaled by ``scale``; the stream's channels are one group read by conv b and by the dense layer (a 1x1
    reader has no zero-padded border, so mean replacement there is exact)."""
    inputs = keras.Input((6, 6, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    b = keras.layers.Conv2D(4, 1, name="b")(a)
    x = keras.layers.ReLU(name="relu")(keras.layers.Add(name="add")([a, b]))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(x))
    rng = np.random.default_rng(0)
    for name in ("a", "b", "head"):
        layer = model.get_layer(name)
        weights = [rng.normal(size=w.shape).astype(np.float32) for w in layer.get_weights()]
        if name in ("a", "b"):
            weights[0][..., 0] *= scale
            weights[1][0] = 1.0  # a positive bias keeps channel 0 above the ReLU's kink
        layer.set_weights(weights)
    return model


def test_saliency_is_the_first_order_loss_change_of_the_surgery():
    """On one image, a channel's saliency is the square of the loss change that removing it (with mean
    replacement at conv b and at the dense layer, never at the Add) causes, to first order: exact as the
    channel's variation shrinks."""
    model = _residual(scale=1e-3)
    image = np.random.default_rng(1).uniform(-1, 1, (1, 6, 6, 3)).astype(np.float32)
    label = np.array([2])
    graph = ChannelGraph(model)
    groups = groups_of(graph)
    (group,) = [g for g in groups if g.channels == 4]
    taps = sorted({tap.layer for g in groups for tap in g.taps})
    statistics = collect_statistics(model, image, taps)
    saliency = collect_saliency(graph, groups, statistics, image, label)[group.name]
    plan = SurgeryPlan()
    group.apply(plan, [1, 2, 3])
    change = classification_loss(rebuild(graph, plan, statistics), image, label) - classification_loss(
        model, image, label
    )
    assert saliency.count == 1
    assert np.sqrt(saliency.mean[0]) == pytest.approx(abs(change), rel=0.05)


def test_taylor_scores_a_quiet_channel_by_what_its_readers_make_of_it():
    """Channel 0 is the quietest (relevance ranks it last), but it carries the stream the head reads; taylor
    measures that."""
    model = _residual(scale=0.05)
    head = model.get_layer("head")
    kernel, bias = head.get_weights()
    kernel[0] *= 400.0  # the head amplifies channel 0
    head.set_weights([kernel, bias])
    images = np.random.default_rng(2).uniform(-1, 1, (32, 6, 6, 3)).astype(np.float32)
    by = {
        criterion: trim_classifier(model, images, criterion=criterion, ratio=0.0).scores
        for criterion in ("relevance", "taylor")
    }
    (name,) = [n for n, s in by["taylor"].items() if len(s) == 4]
    assert np.argmin(by["relevance"][name]) == 0
    assert np.argmax(by["taylor"][name]) == 0


def test_taylor_needs_saliency():
    from tfscissor.trim import trim_model

    model = _residual(scale=1.0)
    images = np.zeros((2, 6, 6, 3), np.float32)
    with pytest.raises(UsageError, match="no saliency for group"):
        trim_model(model, collect_statistics(model, images), criterion="taylor", ratio=0.5)


def test_no_layer_loses_more_than_the_limit_and_the_stem_stays(tiny_data):
    model = build_model("resnet", tiny_data.image_shape, tiny_data.num_classes, blocks=(1, 1), widths=(16, 32))
    images = tiny_data.train.images[:32]
    result = trim_classifier(model, images, criterion="l1", ratio=0.6, max_layer_ratio=0.5, protect_stem=True)
    assert all(len(kept) >= result.channels[name] / 2 for name, kept in result.kept.items())
    # The stem's channels run through stage 1's residual stream: that whole group is protected.
    stem_groups = [g for g in find_groups(model) if "stem_conv" in [m.layer for m in g.producers]]
    assert stem_groups and all(g.name not in result.kept for g in stem_groups)
    unprotected = trim_classifier(model, images, criterion="l1", ratio=0.6, max_layer_ratio=1.0)
    assert stem_groups[0].name in unprotected.kept
    assert min(len(k) / unprotected.channels[n] for n, k in unprotected.kept.items()) < 0.5


def test_an_unmeetable_budget_names_the_limit(tiny_data):
    model = build_model("plain", tiny_data.image_shape, tiny_data.num_classes, widths=(8, 16))
    with pytest.raises(UsageError, match="raise max_layer_ratio"):
        trim_classifier(model, tiny_data.train.images[:16], criterion="l1", target_macs=0.05, max_layer_ratio=0.5)


def test_sensitivity_spends_the_budget_where_the_measured_loss_grows_least():
    scores = {"steep": np.array([3.0, 1.0, 2.0, 4.0]), "flat": np.array([1.0, 2.0, 3.0, 4.0])}
    curves = {
        "steep": (np.array([0.0, 0.5]), np.array([0.0, 2.0])),
        "flat": (np.array([0.0, 0.5]), np.array([0.0, 0.2])),
    }
    adjusted = sensitivity_scores(scores, curves)
    ranked = sorted((value, name) for name, values in adjusted.items() for value in values)
    assert [name for _, name in ranked[:2]] == ["flat", "flat"]
    # Within a group the criterion's order stands: its lowest score is the first to go.
    assert np.argmin(adjusted["steep"]) == np.argmin(scores["steep"]) == 1


def test_sensitivity_allocation_meets_the_budget(tiny_data):
    from tfscissor.analysis import profile_model

    model = build_model("plain", tiny_data.image_shape, tiny_data.num_classes, widths=(32, 64))
    images, labels = tiny_data.train.images[:32], tiny_data.train.labels[:32]
    result = trim_classifier(model, images, labels, criterion="taylor", target_macs=0.6, allocation="sensitivity")
    macs = profile_model(result.model).macs / profile_model(model).macs
    assert 0.58 <= macs <= 0.6, macs
    with pytest.raises(UsageError, match="unknown allocation"):
        trim_classifier(model, images, target_macs=0.6, allocation="magic")


def test_the_stage_allocates_by_sensitivity_within_each_steps_limits(trained_resnet, tiny_data):
    """The stage gives each step of its trim a limit per group (what the earlier steps left of the whole
    trim's); the measured curves stop at each group's own limit."""
    model = load_model(trained_resnet)
    result = run_trim(model, tiny_data, target_macs=0.6, allocation="sensitivity", samples=64, steps=2)
    assert 0.58 <= result.report["macs_after"] / result.report["macs_before"] <= 0.6
    for layer in result.report["layers"]:
        assert layer["after"] >= layer["before"] / 4  # the default limit: at most 75% of a group goes


def test_batch_norms_a_short_fine_tune_leaves_stale_are_re_estimated(trained_resnet, tiny_data):
    """Keras's default momentum (0.99) keeps most of the moving statistics from before a fine-tune of a few
    steps; the stage gives those batch norms the fine-tuned model's own statistics."""
    model = load_model(trained_resnet)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.99
    result = run_trim(model, tiny_data, ratio=0.3, samples=64, steps=1, fine_tune_epochs=1, batch_size=64)
    trimmed = result.model
    assert stale_batch_norms(trimmed, len(tiny_data.train) // 64) == [layer.name for layer in norms]
    saved = {layer.name: trimmed.get_layer(layer.name).get_weights() for layer in norms}
    # The stage's sample: the same seed draws the same images.
    chosen = np.random.default_rng(0).permutation(len(tiny_data.train))[:64]
    recalibrate_batch_norm(trimmed, tiny_data.train.images[chosen])
    for layer in norms:
        for got, again in zip(saved[layer.name], trimmed.get_layer(layer.name).get_weights(), strict=True):
            np.testing.assert_allclose(got, again, rtol=1e-5, atol=1e-6)
    # tfscissor's builders' momentum (0.9) settles within the fine-tunes its benchmarks run; a frozen batch
    # norm is never stale (it ran in inference mode, and the fine-tune learned around it).
    fresh = build_model("resnet", (16, 16, 3), 3)
    assert stale_batch_norms(fresh, 44) == []
    frozen = next(layer for layer in fresh.layers if isinstance(layer, keras.layers.BatchNormalization))
    frozen.momentum, frozen.trainable = 0.99, False
    assert (
        stale_batch_norms(fresh, 1)
        == [layer.name for layer in fresh.layers if isinstance(layer, keras.layers.BatchNormalization)][1:]
    )


def test_recalibration_sets_each_batch_norm_to_the_statistics_of_what_it_reads():
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(3, 1, name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(x))
    images = np.random.default_rng(0).normal(2.0, 3.0, (40, 4, 4, 2)).astype(np.float32)
    recalibrate_batch_norm(model, images, batch_size=8)
    seen = np.asarray(model.get_layer("conv")(images)).reshape(-1, 3)
    bn = model.get_layer("bn")
    np.testing.assert_allclose(np.asarray(bn.moving_mean), seen.mean(axis=0), rtol=1e-4, atol=1e-4)
    batch_variances = np.mean([seen[i * 128 : (i + 1) * 128].var(axis=0) for i in range(5)], axis=0)
    np.testing.assert_allclose(np.asarray(bn.moving_variance), batch_variances, rtol=1e-3)
    assert bn.momentum == 0.99  # restored


def test_recalibrating_named_batch_norms_leaves_the_others_as_they_were():
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.BatchNormalization(name="settled")(keras.layers.Conv2D(3, 1, name="a")(inputs))
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="stale")(keras.layers.Conv2D(3, 1)(x)))
    images = np.random.default_rng(0).normal(2.0, 3.0, (40, 4, 4, 2)).astype(np.float32)
    settled = [np.asarray(w).copy() for w in model.get_layer("settled").get_weights()]
    recalibrate_batch_norm(model, images, batch_size=8, names=["stale"])
    for before, after in zip(settled, model.get_layer("settled").get_weights(), strict=True):
        np.testing.assert_array_equal(before, np.asarray(after))
    assert not np.allclose(np.asarray(model.get_layer("stale").moving_mean), 0.0)
    assert model.get_layer("settled").trainable  # restored


def test_sensitivity_is_measured_up_to_each_groups_own_limit(monkeypatch):
    from types import SimpleNamespace

    from tfscissor.trim import sensitivity

    groups = [SimpleNamespace(name=name, channels=8) for name in ("none", "little", "default")]
    scores = {group.name: np.arange(8.0) for group in groups}
    # The "model" a kept set builds is the kept set; its loss is the channels it lost.
    monkeypatch.setattr(sensitivity, "classification_loss", lambda kept, *_: sum(8 - len(k) for k in kept.values()))
    curves = sensitivity.measure_sensitivity(
        groups, scores, lambda kept: kept, None, max_layer_ratio={"none": 0.0, "little": 0.2}
    )
    assert list(curves["none"][0]) == [0.0]
    assert list(curves["little"][0]) == [0.0, 0.2]
    assert list(curves["default"][0]) == [0.0, 0.25, 0.5, 0.75]  # not named: no limit but the levels'
    assert list(curves["default"][1]) == [0.0, 2.0, 4.0, 6.0]


def test_distillation_loss_is_half_labels_half_softened_teacher():
    rng = np.random.default_rng(0)
    student = rng.dirichlet(np.ones(4), size=5).astype(np.float32)
    teacher = rng.dirichlet(np.ones(4), size=5).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 0])
    targets = np.concatenate([labels[:, None].astype(np.float32), teacher], axis=1)

    def soften(p):
        z = np.log(p) / 2.0
        return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)

    hard = -np.mean(np.log(student[np.arange(5), labels]))
    t, s = soften(teacher), soften(student)
    kl = np.mean(np.sum(t * (np.log(t) - np.log(s)), axis=1))
    assert float(distillation_loss(targets, student)) == pytest.approx(0.5 * hard + 0.5 * 4.0 * kl, rel=1e-4)
    # Logits give the same loss as their softmax.
    logits = np.log(student) + 3.0
    assert float(distillation_loss(targets, logits)) == pytest.approx(
        float(distillation_loss(targets, student)), rel=1e-4
    )


def test_fine_tuning_distils_from_the_untrimmed_model(trained_resnet, tiny_data):
    teacher = load_model(trained_resnet)
    student = build_model("resnet", tiny_data.image_shape, tiny_data.num_classes, blocks=(1, 1), widths=(8, 16))
    history = train_classifier(student, tiny_data, epochs=2, batch_size=32, learning_rate=3e-3, teacher=teacher)
    assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history["accuracy"][-1] == pytest.approx(evaluate_classifier(student, tiny_data.train), abs=0.2)
    wrong = build_model("plain", tiny_data.image_shape, 7, widths=(8,))
    with pytest.raises(Exception, match="distil from a model of the same classes"):
        train_classifier(student, tiny_data, epochs=1, teacher=wrong)


def test_a_teacher_sees_its_own_view_of_the_same_images(trained_resnet, tiny_data):
    """A student on 24-px images learns from a 32-px teacher given the same images at its size; a teacher
    view of other images is refused, since its outputs would teach the wrong ones."""
    from tfscissor.shrink import resized

    teacher = load_model(trained_resnet)
    small = resized(tiny_data)(24)
    student = build_model("resnet", small.image_shape, small.num_classes, blocks=(1, 1), widths=(8, 16))
    history = train_classifier(student, small, epochs=1, batch_size=32, teacher=teacher, teacher_data=tiny_data)
    assert history["loss"] and np.isfinite(history["loss"][-1])
    with pytest.raises(Exception, match="takes images of"):
        train_classifier(student, small, epochs=1, teacher=teacher)  # the student's 24-px view is not the teacher's
    shuffled = type(tiny_data)(tiny_data.spec, tiny_data.class_names, tiny_data.val, tiny_data.train)
    with pytest.raises(Exception, match="the teacher's train split .* is not the student's"):
        train_classifier(student, small, epochs=1, teacher=teacher, teacher_data=shuffled)


def test_a_seed_repeats_a_trim_and_another_seed_changes_it(trained_resnet, tiny_data):
    def run(seed):
        return run_trim(
            load_model(trained_resnet), tiny_data, ratio=0.3, criterion="random", steps=2, samples=32, seed=seed
        )

    first, again, other = run(3), run(3), run(4)
    assert first.report["layers"] == again.report["layers"]
    for a, b in zip(first.model.get_weights(), again.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert first.report["layers"] != other.report["layers"]
