"""train_cropper_stage: the cropper sized against the classifier as it will run, and the report saying so."""

import pytest

from tfscissor.errors import UsageError

DATA = "cluttered:size=32,n=120,classes=3,seed=4"


@pytest.fixture(scope="module")
def small():
    from tfscissor.data import load_data
    from tfscissor.models import build_model

    return load_data(DATA), build_model("resnet", (32, 32, 3), 3, seed=0)


def _macs(model):
    from tfscissor.analysis import profile_model

    return profile_model(model).macs


@pytest.mark.slow
@pytest.mark.parametrize("resolution", [None, 16])
def test_cropper_is_sized_against_the_classifier_at_its_resolution(small, resolution):
    from tfscissor.crop.sizing import BYTES_SHARE, MACS_SHARE, estimated_int8_bytes
    from tfscissor.crop.stage import train_cropper_stage
    from tfscissor.models.graph import with_input_size

    dataset, classifier = small
    result = train_cropper_stage(dataset, classifier=classifier, resolution=resolution, epochs=1)
    report, side = result.report, resolution or 32
    classifier_macs = _macs(with_input_size(classifier, side))
    classifier_bytes = estimated_int8_bytes(classifier)  # no resolution changes the weights
    assert report["sized"] == "classifier" and report["resolution"] == side
    assert report["classifier_macs"] == classifier_macs and report["classifier_bytes"] == classifier_bytes
    assert report["macs_budget"] == MACS_SHARE * classifier_macs
    assert report["bytes_budget"] == BYTES_SHARE * classifier_bytes
    assert report["macs"] == _macs(result.model) <= MACS_SHARE * classifier_macs
    assert report["bytes"] == estimated_int8_bytes(result.model) <= BYTES_SHARE * classifier_bytes
    assert report["share"] == pytest.approx(report["macs"] / classifier_macs)
    assert report["bytes_share"] == pytest.approx(report["bytes"] / classifier_bytes)
    assert "fc" not in {layer.name for layer in result.model.layers}  # the lean head
    assert 0.0 <= report["val"]["mean_iou"] <= 1.0


@pytest.mark.slow
def test_cropper_options_override_the_sizing(small):
    from tfscissor.crop.stage import train_cropper_stage

    dataset, classifier = small
    options = {"view": 16, "width": 1.0, "blocks": 1, "stages": 2}
    result = train_cropper_stage(dataset, classifier=classifier, resolution=16, cropper_options=options, epochs=1)
    report = result.report
    assert report["sized"] == "options" and "macs_budget" not in report and "bytes_budget" not in report
    assert result.model.get_layer("stem_conv").filters == 16 and result.model.get_layer("view").pool_size == (2, 2)
    assert report["resolution"] == 16 and report["share"] == pytest.approx(report["macs"] / report["classifier_macs"])


@pytest.mark.slow
def test_without_a_classifier_the_cropper_is_the_full_default(small):
    from tfscissor.crop.stage import train_cropper_stage
    from tfscissor.models.cropper import build_cropper

    dataset, _ = small
    result = train_cropper_stage(dataset, epochs=1)
    assert result.report["sized"] == "default" and "share" not in result.report
    assert result.report["macs"] == _macs(build_cropper((32, 32, 3)))


def test_a_resolution_without_a_classifier_is_refused(small):
    from tfscissor.crop.stage import train_cropper_stage

    with pytest.raises(UsageError, match="a resolution \\(16 px\\) sizes the cropper against the classifier"):
        train_cropper_stage(small[0], resolution=16)


def test_unknown_cropper_options_are_refused(small):
    from tfscissor.crop.stage import train_cropper_stage

    with pytest.raises(UsageError, match="unknown cropper option\\(s\\) depth: use blocks, hidden, stages, view"):
        train_cropper_stage(small[0], cropper_options={"depth": 2})


def test_late_gain_is_the_val_iou_rise_over_the_last_epochs():
    from tfscissor.crop.training import late_gain

    rising = [0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    assert late_gain(rising) == pytest.approx(0.95 - 0.5)  # five epochs back
    assert late_gain(rising, epochs_back=1) == pytest.approx(0.95 - 0.9)
    assert late_gain([0.4, 0.6]) == pytest.approx(0.2)  # a shorter training: back to its first epoch
    assert late_gain([0.7]) is None  # one epoch: nothing to compare with
    assert late_gain([0.8, 0.81, 0.8, 0.8, 0.8, 0.8]) == 0.0  # stopped improving


@pytest.mark.slow
def test_the_report_says_how_much_the_box_was_still_improving(small):
    from tfscissor.crop.stage import train_cropper_stage
    from tfscissor.crop.training import late_gain

    dataset, _ = small
    result = train_cropper_stage(dataset, epochs=3, cropper_options={"view": 16, "width": 0.25, "blocks": 1})
    history = result.history["val_mean_iou"]
    assert len(history) == 3
    assert result.report["late_iou_gain"] == late_gain(history) == pytest.approx(history[-1] - history[0])


def test_data_without_val_images_is_refused_before_training(small):
    from tfscissor.crop.stage import train_cropper_stage
    from tfscissor.data.dataset import Dataset, Split
    from tfscissor.errors import DataError

    dataset, _ = small
    no_val = Split(dataset.val.images[:0], dataset.val.labels[:0], dataset.val.boxes[:0])
    alone = Dataset(dataset.spec, dataset.class_names, dataset.train, no_val)
    with pytest.raises(DataError, match="has no val images, on which the cropper's boxes are scored"):
        train_cropper_stage(alone, epochs=1)
