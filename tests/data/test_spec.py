import pytest

from tfscissor.data import DataSpec, parse_spec
from tfscissor.data.spec import CLUTTERED_OPTIONS, KINDS
from tfscissor.errors import UsageError


@pytest.mark.parametrize(
    ("text", "kind", "arg", "options"),
    [
        ("cluttered", "cluttered", None, {}),
        ("cluttered:", "cluttered", None, {}),
        (
            "cluttered:size=64,n=2000,classes=10,seed=0",
            "cluttered",
            None,
            {"size": 64, "n": 2000, "classes": 10, "seed": 0},
        ),
        (
            "cluttered:min_scale=0.25,max_scale=.5,val=0.1",
            "cluttered",
            None,
            {"min_scale": 0.25, "max_scale": 0.5, "val": 0.1},
        ),
        (
            "cluttered:source=idx:/data/fashion,difficulty=hard",
            "cluttered",
            None,
            {"source": "idx:/data/fashion", "difficulty": "hard"},
        ),
        ("cluttered:source=digits,channels=1", "cluttered", None, {"source": "digits", "channels": 1}),
        (" cluttered : size = 32 , ", "cluttered", None, {"size": 32}),
        ("folder:/data/images", "folder", "/data/images", {}),
        ("folder:/data/images,val=0.1,seed=3", "folder", "/data/images", {"val": 0.1, "seed": 3}),
        ("folder:/data/a,b", "folder", "/data/a,b", {}),
        ("idx:/usr/share/datasets/fashion-mnist", "idx", "/usr/share/datasets/fashion-mnist", {}),
        ("idx:relative/dir,limit=100", "idx", "relative/dir", {"limit": 100}),
        ("tfds:mnist", "tfds", "mnist", {}),
        ("tfds:mnist:3.0.1,data_dir=/tfds,limit=5", "tfds", "mnist:3.0.1", {"data_dir": "/tfds", "limit": 5}),
        ("tfds:cifar10_corrupted/fog_1", "tfds", "cifar10_corrupted/fog_1", {}),
    ],
)
def test_parse(text, kind, arg, options):
    spec = parse_spec(text)
    assert (spec.kind, spec.arg, dict(spec.options)) == (kind, arg, options)
    assert parse_spec(str(spec)) == spec  # the canonical string round-trips
    assert str(parse_spec(str(spec))) == str(spec)


def test_canonical_string_sorts_options_and_normalises_values():
    assert str(parse_spec("cluttered:seed=1,size=0032,val=.5")) == "cluttered:seed=1,size=32,val=0.5"
    assert str(parse_spec("folder:x,seed=2,val=0.3")) == "folder:x,seed=2,val=0.3"
    assert str(parse_spec("cluttered:")) == "cluttered"
    assert parse_spec("cluttered:size=64,n=10") == parse_spec("cluttered:n=10,size=64")


def test_dataspec_is_frozen_hashable_and_readonly():
    spec = parse_spec("cluttered:size=64")
    assert parse_spec(spec) is spec
    assert hash(spec) == hash(parse_spec("cluttered:size=64"))
    with pytest.raises(TypeError):
        spec.options["size"] = 32
    with pytest.raises(AttributeError):
        spec.kind = "folder"
    assert repr(spec) == "DataSpec(kind='cluttered', arg=None, options={'size': 64})"
    built = DataSpec("cluttered", None, {"n": 5, "channels": 1})
    assert str(built) == "cluttered:channels=1,n=5"


def test_dataspec_pickles_and_copies():
    import copy
    import pickle

    spec = parse_spec("tfds:mnist,data_dir=/x,limit=3")
    for clone in (pickle.loads(pickle.dumps(spec)), copy.deepcopy(spec), copy.copy(spec)):
        assert clone == spec and str(clone) == str(spec)


def _error(text):
    with pytest.raises(UsageError) as info:
        parse_spec(text)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_not_a_string():
    with pytest.raises(UsageError, match="must be a string.*got int"):
        parse_spec(3)


def test_empty():
    assert "empty data spec" in _error("  ")


def test_unknown_kind_lists_kinds():
    message = _error("clutered:size=64")
    assert "'clutered'" in message
    for kind in KINDS:
        assert kind in message


@pytest.mark.parametrize("text", ["folder", "folder:", "idx:", "tfds:,limit=3"])
def test_missing_argument(text):
    message = _error(text)
    assert "needs a" in message and text.split(":")[0] + ":" in message


@pytest.mark.parametrize("text", ["tfds:MNIST", "tfds:mnist:latest", "tfds:../x"])
def test_bad_tfds_name(text):
    assert "bad tfds data set name" in _error(text)


def test_option_not_key_value():
    message = _error("cluttered:size64")
    assert "'size64'" in message and "not key=value" in message


def test_unknown_option_lists_accepted():
    message = _error("cluttered:sise=64")
    assert "'sise'" in message
    for key in CLUTTERED_OPTIONS:
        assert key in message
    assert "'limt'" in _error("tfds:mnist,limt=5")


def test_duplicate_option():
    assert "given twice" in _error("cluttered:size=32,size=64")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("cluttered:size=8", "size"),
        ("cluttered:size=abc", "size"),
        ("cluttered:size=64.0", "size"),
        ("cluttered:n=1", "n"),
        ("cluttered:classes=1", "classes"),
        ("cluttered:clutter=-1", "clutter"),
        ("cluttered:seed=-3", "seed"),
        ("cluttered:source=photos", "source"),
        ("cluttered:source=idx:", "source"),
        ("cluttered:min_scale=0", "min_scale"),
        ("cluttered:max_scale=1.5", "max_scale"),
        ("cluttered:max_scale=nan", "max_scale"),
        ("cluttered:val=0", "val"),
        ("cluttered:val=1", "val"),
        ("cluttered:channels=2", "channels"),
        ("cluttered:difficulty=extreme", "difficulty"),
        ("folder:x,val=0.0", "val"),
        ("idx:x,limit=0", "limit"),
        ("tfds:mnist,data_dir=", "data_dir"),
    ],
)
def test_bad_value_names_option_and_expectation(text, key):
    message = _error(text)
    assert f"option '{key}'" in message
    assert "expected" in message and "e.g." in message
