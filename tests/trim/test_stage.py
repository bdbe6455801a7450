import pytest

from tfscissor.errors import UsageError
from tfscissor.models import load_model
from tfscissor.trim.stage import run_trim, step_policy


def test_steps_split_a_ratio_so_that_they_compound_to_it():
    assert step_policy("ratio", 0.75, 1, 2, 100, 100)["ratio"] == pytest.approx(0.5)  # half
    assert step_policy("ratio", 0.75, 2, 2, 100, 50)["ratio"] == pytest.approx(0.5)  # then half of what is left
    # A step that rounded to fewer removals than asked is made up in the next one.
    assert step_policy("ratio", 0.75, 2, 2, 100, 60)["ratio"] == pytest.approx(1 - 25 / 60)


def test_steps_approach_a_budget_geometrically_from_the_original():
    # Step 1 of 2 towards 25% of 1000 MACs: 50% of the original, i.e. all of a model already at 500.
    assert step_policy("target_macs", 0.25, 1, 2, 1000, 1000) == {"target_macs": pytest.approx(0.5)}
    assert step_policy("target_macs", 0.25, 2, 2, 1000, 500) == {"target_macs": pytest.approx(0.5)}
    # A model already under the round's goal is not asked to grow.
    assert step_policy("target_params", 0.5, 1, 1, 1000, 400) == {"target_params": 1.0}
    assert step_policy("min_relevance", 0.1, 2, 3, 1, 1) == {"min_relevance": 0.1}


@pytest.mark.slow
def test_stage_checks_its_options_before_working(trained_plain, tiny_data):
    with pytest.raises(UsageError, match="exactly one trimming policy"):
        run_trim(load_model(trained_plain), tiny_data, ratio=0.5, target_macs=0.5)
    with pytest.raises(UsageError, match="rounds and steps must be >= 1"):
        run_trim(load_model(trained_plain), tiny_data, ratio=0.5, rounds=0)
    with pytest.raises(UsageError, match="max_layer_ratio"):
        run_trim(load_model(trained_plain), tiny_data, ratio=0.5, max_layer_ratio=1.5)
    with pytest.raises(UsageError, match="samples is the number of representative images: give at least 1"):
        run_trim(load_model(trained_plain), tiny_data, ratio=0.5, samples=0)


@pytest.mark.slow
def test_what_the_stage_cannot_trim_is_named(trained_plain, tiny_data):
    import keras

    from tfscissor.errors import ModelError
    from tfscissor.trim import trim_classifier

    model = load_model(trained_plain)
    with pytest.raises(UsageError, match="no representative images"):
        trim_classifier(model, tiny_data.train.images[:0], ratio=0.5)
    two_heads = keras.Model(model.inputs, [model.outputs[0], model.outputs[0] * 2.0])
    with pytest.raises(ModelError, match="has 1 inputs and 2 outputs: .* image classifiers with one of each"):
        run_trim(two_heads, tiny_data, ratio=0.5)


@pytest.mark.slow
def test_two_rounds_meet_the_budget_and_report_each_round(trained_plain, tiny_data):
    result = run_trim(load_model(trained_plain), tiny_data, target_macs=0.4, rounds=2, fine_tune_epochs=1, samples=64)
    report = result.report
    assert [r["round"] for r in report["rounds"]] == [1, 2]
    assert report["rounds"][0]["macs"] > report["rounds"][1]["macs"] == report["macs_after"]
    assert report["macs_after"] <= 0.4 * report["macs_before"]
    assert all(row["after"] <= row["before"] for row in report["layers"])
    assert result.model.count_params() == report["params_after"]
