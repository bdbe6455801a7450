"""Depth: finding bypassable residual blocks and removing them by surgery."""

import numpy as np
import pytest

from tfscissor.analysis import profile_model
from tfscissor.errors import ModelError, UsageError
from tfscissor.models import build_model
from tfscissor.shrink import block_relevance, bypass_loss, find_blocks, remove_blocks, score_blocks

BUILDERS = {
    "resnet": {},
    "resnet-bottleneck": {"block": "bottleneck"},
    "mobilenetv2": {},
}


def builder(key, shape=(32, 32, 3)):
    return build_model(key.split("-")[0], shape, 4, seed=0, **BUILDERS[key])


def images(shape=(32, 32, 3), n=4):
    return np.random.default_rng(0).uniform(0, 255, (n, *shape)).astype(np.float32)


@pytest.mark.parametrize("key", BUILDERS)
def test_removing_a_block_drops_exactly_its_macs(key):
    model = builder(key)
    blocks = find_blocks(model)
    assert blocks, "every builder has identity blocks"
    before = profile_model(model).macs
    for block in blocks:
        smaller = remove_blocks(model, [block.add])
        assert block.macs > 0
        assert before - profile_model(smaller).macs == block.macs
        assert smaller.predict(images(), verbose=0).shape == (4, 4)
        assert not {block.add, *block.branch} & {layer.name for layer in smaller.layers}


@pytest.mark.parametrize("key", BUILDERS)
def test_a_block_whose_branch_is_zero_is_removed_with_unchanged_outputs(key):
    model = builder(key)
    block = find_blocks(model)[-1]
    last = model.get_layer(block.branch[-1])  # the batch norm that feeds the addition
    gamma, beta, mean, variance = last.get_weights()
    last.set_weights([np.zeros_like(gamma), np.zeros_like(beta), mean, variance])
    smaller = remove_blocks(model, [block.add])
    np.testing.assert_allclose(smaller.predict(images(), verbose=0), model.predict(images(), verbose=0), atol=1e-6)


def test_the_input_model_is_unchanged():
    model = builder("resnet")
    weights = [w.copy() for w in model.get_weights()]
    names = [layer.name for layer in model.layers]
    remove_blocks(model, [find_blocks(model)[-1].add])
    assert [layer.name for layer in model.layers] == names
    for a, b in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_blocks_are_the_identity_ones_with_their_branch_and_stage():
    blocks = find_blocks(builder("resnet"))
    # Stages 2 and 3 start with a projection block, which has no identity shortcut.
    assert [b.add for b in blocks] == [
        "stage1_block1_add",
        "stage1_block2_add",
        "stage2_block2_add",
        "stage3_block2_add",
    ]
    expected = ("stage2_block2_1_conv", "stage2_block2_1_bn", "stage2_block2_1_relu", "stage2_block2_2_conv")
    assert blocks[2].branch == (*expected, "stage2_block2_2_bn")  # no ReLU before the addition
    assert blocks[2].shape == (16, 16, 32)


def test_every_stage_keeps_a_block():
    model = builder("resnet")
    # Stage 1 starts at the stem: its two identity blocks are all it has.
    with pytest.raises(ModelError, match="would leave no block at 32x32x16: keep at least one block per stage"):
        remove_blocks(model, ["stage1_block1_add", "stage1_block2_add"])
    assert len(remove_blocks(model, ["stage1_block2_add"]).layers) < len(model.layers)
    # Stage 2 keeps its projection block, so its only identity block may go; so may all of MobileNetV2's.
    remove_blocks(model, ["stage2_block2_add", "stage3_block2_add"])
    mobilenet = builder("mobilenetv2")
    remove_blocks(mobilenet, [b.add for b in find_blocks(mobilenet)])
    both = remove_blocks(model, ["stage1_block1_add", "stage1_block2_add"], keep_one_per_stage=False)
    assert not [b for b in find_blocks(both) if b.shape == (32, 32, 16)]


def test_an_unknown_block_names_the_ones_there_are():
    with pytest.raises(UsageError, match="stage2_block1_add of model resnet is not a removable block: .*stage1_block1"):
        remove_blocks(builder("resnet"), ["stage2_block1_add"])


def test_blocks_inside_a_nested_backbone():
    import keras

    backbone = builder("resnet")
    inputs = keras.Input((32, 32, 3))
    outer = keras.Model(inputs, keras.layers.Dense(2, name="head")(backbone(inputs)), name="outer")
    blocks = find_blocks(outer)
    assert [b.add for b in blocks] == [b.add for b in find_blocks(backbone)]
    smaller = remove_blocks(outer, [blocks[-1].add])
    assert profile_model(outer).macs - profile_model(smaller).macs == blocks[-1].macs


@pytest.mark.slow
@pytest.mark.parametrize("name, count", [("ResNet50", 12), ("MobileNetV2", 10), ("EfficientNetB0", 9)])
def test_keras_applications_identity_blocks(name, count):
    model = build_model(name, (64, 64, 3), 4)
    blocks = find_blocks(model)
    assert len(blocks) == count
    smaller = remove_blocks(model, [blocks[-1].add])
    assert profile_model(model).macs - profile_model(smaller).macs == blocks[-1].macs
    assert smaller.predict(images((64, 64, 3), 2), verbose=0).shape == (2, 4)


def zeroed_resnet():
    """A ResNet whose second block's branch outputs zeros (its last batch norm has gamma = beta = 0)."""
    model = builder("resnet")
    blocks = find_blocks(model)
    last = model.get_layer(blocks[1].branch[-1])
    gamma, beta, mean, variance = last.get_weights()
    last.set_weights([np.zeros_like(gamma), np.zeros_like(beta), mean, variance])
    return model, blocks


def test_block_relevance_is_branch_over_shortcut():
    model, blocks = zeroed_resnet()
    relevance = block_relevance(model, images(n=8), batch_size=3)
    assert set(relevance) == {b.add for b in blocks}
    assert relevance[blocks[1].add] == 0.0  # the zeroed branch adds nothing
    assert all(r > 0 for name, r in relevance.items() if name != blocks[1].add)
    # The ratio by hand for one block: mean |branch| / mean |shortcut| over the same images.
    import keras

    add = model.get_layer(blocks[0].add)
    shortcut, branch = add.input
    probe = keras.Model(model.inputs, [branch, shortcut])
    b, s = probe.predict(images(n=8), verbose=0)
    assert relevance[blocks[0].add] == pytest.approx(np.abs(b).sum() / np.abs(s).sum(), rel=1e-5)


def test_bypass_loss_is_the_loss_increase_when_the_block_alone_is_removed():
    model, blocks = zeroed_resnet()
    x, labels = images(n=8), np.arange(8) % model.output_shape[-1]
    scores = bypass_loss(model, x, labels, batch_size=3)
    assert set(scores) == {b.add for b in blocks}
    assert scores[blocks[1].add] == pytest.approx(0.0, abs=1e-6)  # removing the zeroed branch changes nothing
    # By hand for another block: the mean cross-entropy with it removed minus the model's.
    import keras

    def loss(m):
        return float(keras.losses.sparse_categorical_crossentropy(labels, m.predict(x, verbose=0)).numpy().mean())

    without = remove_blocks(model, [blocks[0].add], keep_one_per_stage=False)
    assert scores[blocks[0].add] == pytest.approx(loss(without) - loss(model), rel=1e-4, abs=1e-6)
    assert score_blocks(model, x, labels, "bypass") == pytest.approx(scores, abs=1e-5)


def test_score_blocks_names_its_criteria_and_needs_labels_for_bypass():
    model = builder("resnet")
    assert score_blocks(model, images(n=4)) == block_relevance(model, images(n=4))
    with pytest.raises(UsageError, match="unknown depth criterion 'magnitude': use relevance, bypass"):
        score_blocks(model, images(n=4), criterion="magnitude")
    with pytest.raises(UsageError, match="bypass depth criterion needs labels"):
        score_blocks(model, images(n=4), criterion="bypass")
