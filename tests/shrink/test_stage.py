"""`run_shrink`, the stage the CLI and recipes call: whose outputs the final fine-tunes distil from."""

import numpy as np
import pytest

import tfscissor.models.training as training
from tfscissor.crop.pipeline import cropped
from tfscissor.models import build_model
from tfscissor.models.cropper import build_cropper
from tfscissor.shrink import compound, parse_budget, run_shrink

SEARCH = {"depths": (0,), "widths": (1.0,), "resolutions": (24,), "calibration": 32, "score_samples": 50, "top": 1}


@pytest.fixture
def teachers_images(monkeypatch):
    """The images each distillation's teacher is shown, in call order (train split, then val)."""
    seen = []
    real = training.distillation_targets

    def recording(labels, images, teacher):
        if teacher is not None:
            seen.append((teacher, np.asarray(images)))
        return real(labels, images, teacher)

    monkeypatch.setattr(training, "distillation_targets", recording)
    return seen


def classifier(side):
    return build_model("plain", (side, side, 3), 4, widths=(8,), seed=0)


def shrink(model, data, **options):
    # An absolute budget that the classifier and the cropper fit together: what is searched is not the point.
    return run_shrink(model, data, parse_budget("macs=10M"), fine_tune_epochs=1, **{**SEARCH, **options})


@pytest.mark.slow
def test_by_default_the_model_teaches_its_shrunk_self_on_what_it_takes(tiny_data, teachers_images):
    model = classifier(32)
    shrink(model, tiny_data)
    assert [teacher is model for teacher, _ in teachers_images] == [True, True]
    np.testing.assert_array_equal(teachers_images[0][1], tiny_data.train.images.astype(np.float32))


@pytest.mark.slow
def test_with_a_cropper_an_explicit_teacher_sees_the_whole_images_and_the_model_its_crops(tiny_data, teachers_images):
    cropper = build_cropper((32, 32, 3), width=0.25, blocks=1, stages=1, seed=0)
    model = classifier(16)
    shrink(model, tiny_data, cropper=cropper, resolutions=(16, 12))
    assert [teacher is model for teacher, _ in teachers_images] == [True, True]
    crops = cropped(tiny_data, cropper)(16).train.images
    np.testing.assert_array_equal(teachers_images[0][1], crops.astype(np.float32))

    teachers_images.clear()
    full = classifier(24)
    shrink(model, tiny_data, cropper=cropper, resolutions=(16, 12), teacher=full)
    assert [teacher is full for teacher, _ in teachers_images] == [True, True]
    whole = compound.resized(tiny_data)(24).train.images
    np.testing.assert_array_equal(teachers_images[0][1], whole.astype(np.float32))


@pytest.mark.slow
def test_without_distillation_no_teacher_is_asked(tiny_data, teachers_images):
    shrink(classifier(32), tiny_data, distill=False)
    assert teachers_images == []
