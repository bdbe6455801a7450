import numpy as np
import pytest
from PIL import Image

from tfscissor.data import load_data
from tfscissor.errors import DataError


def _image(path, value, size=(12, 10), mode="RGB"):
    """Save a flat image of ``value`` (width x height = ``size``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "RGB":
        Image.new("RGB", size, (value, 255 - value, 7)).save(path)
    else:
        Image.new(mode, size, value).save(path)
    return path


@pytest.fixture
def flat(tmp_path):
    """cat/ with 5 images, dog/ with 5 (mixed extensions and case), plus files that must be ignored."""
    root = tmp_path / "pets"
    for i in range(5):
        _image(root / "cat" / f"c{i}.png", 10 + i)
        _image(root / "dog" / f"d{i}.{['jpg', 'JPEG', 'bmp', 'PNG', 'jpeg'][i]}", 200 + i)
    (root / "cat" / "notes.txt").write_text("not an image")
    _image(root / "cat" / ".hidden.png", 1)
    (root / ".cache").mkdir()
    return root


def _write_boxes(root, rows, header="path,xmin,ymin,xmax,ymax"):
    (root / "boxes.csv").write_text("\n".join([header, *rows]) + "\n")


def _all_rows(root):
    return [
        f"{p.relative_to(root).as_posix()},0.1,0.2,0.7,0.9"
        for p in sorted(root.rglob("*"))
        if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp") and not p.name.startswith(".")
    ]


def test_flat_folder_with_seeded_stratified_split(flat):
    ds = load_data(f"folder:{flat}")
    assert ds.class_names == ("cat", "dog")
    assert ds.image_shape == (10, 12, 3)
    assert (len(ds.train), len(ds.val)) == (8, 2)
    assert sorted(ds.val.labels.tolist()) == [0, 1] and not ds.has_boxes
    again = load_data(f"folder:{flat}")
    assert np.array_equal(again.val.images, ds.val.images)
    other = load_data(f"folder:{flat},val=0.4,seed=1")
    assert (len(other.train), len(other.val)) == (6, 4)
    # pixels survive decoding (PNG is lossless): the cat images are red-ish, the dog ones green-ish
    cats = ds.train.images[ds.train.labels == 0]
    assert np.all(cats[..., 0] < 20) and np.all(cats[..., 1] > 230)


def test_train_val_folders(tmp_path):
    root = tmp_path / "split"
    for i in range(3):
        _image(root / "train" / "a" / f"{i}.png", i)
        _image(root / "train" / "b" / f"{i}.png", 100 + i)
    _image(root / "val" / "b" / "0.png", 150)  # class a has no val images: allowed
    ds = load_data(f"folder:{root}", image_size=8)
    assert ds.class_names == ("a", "b")
    assert (len(ds.train), len(ds.val)) == (6, 1) and ds.val.labels.tolist() == [1]
    assert ds.image_shape == (8, 8, 3)


def test_only_one_of_train_and_val(tmp_path):
    _image(tmp_path / "train" / "a" / "0.png", 1)
    with pytest.raises(DataError, match="has train/ but no val/"):
        load_data(f"folder:{tmp_path}")


def test_sizes_follow_the_first_image_or_image_size(tmp_path):
    _image(tmp_path / "a" / "0.png", 1, size=(20, 10))
    _image(tmp_path / "a" / "1.png", 2, size=(7, 9))
    _image(tmp_path / "b" / "0.png", 3, size=(30, 30))
    assert load_data(f"folder:{tmp_path}").image_shape == (10, 20, 3)
    assert load_data(f"folder:{tmp_path}", image_size=(5, 6)).image_shape == (5, 6, 3)


def test_grey_stays_one_channel_only_when_all_are_grey(tmp_path):
    _image(tmp_path / "a" / "0.png", 40, mode="L")
    _image(tmp_path / "b" / "0.png", 90, mode="L")
    grey = load_data(f"folder:{tmp_path}")
    assert grey.image_shape == (10, 12, 1) and grey.train.images.max() in (40, 90)
    _image(tmp_path / "b" / "1.png", 90)
    mixed = load_data(f"folder:{tmp_path}")
    assert mixed.image_shape == (10, 12, 3)
    first = np.concatenate([mixed.train.images, mixed.val.images])
    assert any(np.all(image == 40) for image in first)  # the grey image replicated to 3 channels


def test_16_bit_grey_is_scaled_not_clipped(tmp_path):
    array = np.full((4, 4), 40000, dtype=np.uint16)
    (tmp_path / "a").mkdir()
    Image.fromarray(array).save(tmp_path / "a" / "deep.png")
    _image(tmp_path / "b" / "0.png", 10, mode="L")
    ds = load_data(f"folder:{tmp_path}", image_size=4)
    images = np.concatenate([ds.train.images, ds.val.images])
    assert round(40000 / 257) in images


def test_valid_boxes_csv(flat):
    rows = _all_rows(flat)
    rows[0] = rows[0].replace("0.1,0.2,0.7,0.9", "0,0,1,1")
    _write_boxes(flat, rows)
    ds = load_data(f"folder:{flat}")
    assert ds.has_boxes and ds.train.boxes.shape == (8, 4) and ds.val.boxes.shape == (2, 4)
    boxes = np.concatenate([ds.train.boxes, ds.val.boxes])
    assert sum(np.array_equal(b, [0, 0, 1, 1]) for b in boxes) == 1
    assert sum(np.allclose(b, [0.1, 0.2, 0.7, 0.9]) for b in boxes) == 9


def _boxes_error(root, rows, header="path,xmin,ymin,xmax,ymax"):
    _write_boxes(root, rows, header)
    with pytest.raises(DataError) as info:
        load_data(f"folder:{root}")
    message = str(info.value)
    assert str(root / "boxes.csv") in message and "\n" not in message
    return message


def test_boxes_csv_bad_header(flat):
    assert "line 1: header is 'path,x0,y0,x1,y1'" in _boxes_error(flat, _all_rows(flat), header="path,x0,y0,x1,y1")


def test_boxes_csv_empty_file(flat):
    (flat / "boxes.csv").write_text("")
    with pytest.raises(DataError, match="line 1: the file is empty"):
        load_data(f"folder:{flat}")


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ("{path},0.1,0.2,0.7", "4 fields, expected 5"),
        ("{path},0.1,zero,0.7,0.9", "are not all numbers"),
        ("{path},0.1,0.2,1.5,0.9", "outside [0, 1]"),
        ("{path},-0.1,0.2,0.5,0.9", "outside [0, 1]"),
        ("{path},0.1,0.2,inf,0.9", "outside [0, 1]"),
        ("{path},0.7,0.2,0.1,0.9", "need xmin < xmax and ymin < ymax"),
        ("{path},0.1,0.9,0.7,0.2", "need xmin < xmax and ymin < ymax"),
        ("{path},0.5,0.2,0.5,0.9", "need xmin < xmax and ymin < ymax"),
        ("cat/missing.png,0.1,0.2,0.7,0.9", "'cat/missing.png' is not an image of the folder"),
        ("cat/notes.txt,0.1,0.2,0.7,0.9", "'cat/notes.txt' is not an image of the folder"),
    ],
)
def test_boxes_csv_bad_row_names_its_line(flat, row, fragment):
    rows = _all_rows(flat)
    rows.insert(3, row.format(path=rows[3].split(",")[0]))
    message = _boxes_error(flat, rows)
    assert "line 5:" in message and fragment in message


def test_boxes_csv_duplicate_row(flat):
    rows = _all_rows(flat)
    rows.append(rows[2])
    message = _boxes_error(flat, rows)
    assert "line 12:" in message and "already has a box on line 4" in message


def test_boxes_csv_missing_row(flat):
    rows = _all_rows(flat)
    del rows[4]
    message = _boxes_error(flat, rows)
    assert "1 image(s) have no row" in message and "'cat/c4.png'" in message


def test_boxes_csv_blank_lines_and_quotes_are_fine(flat):
    rows = [f'"{r.split(",")[0]}",{r.split(",", 1)[1]}' for r in _all_rows(flat)]
    rows.insert(2, "")
    _write_boxes(flat, rows)
    assert load_data(f"folder:{flat}").has_boxes


def test_undecodable_image_is_named(flat):
    (flat / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match=r"cannot decode image .*dog/broken.png"):
        load_data(f"folder:{flat}")


def test_an_image_too_large_to_decode_safely_is_named(flat, monkeypatch):
    """Pillow refuses images past twice MAX_IMAGE_PIXELS (a 20000x20000 photo at the default): a small limit
    plays that here."""
    _image(flat / "dog" / "huge.png", 9, size=(40, 40))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 600)
    with pytest.raises(DataError, match=r"cannot decode image .*dog/huge.png: it has more pixels than .*downscale it"):
        load_data(f"folder:{flat}")


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist or is not a directory"):
        load_data(f"folder:{tmp_path / 'nope'}")


def test_folder_without_class_folders(tmp_path):
    _image(tmp_path / "loose.png", 3)
    with pytest.raises(DataError, match="has no images: expected .*<class>/"):
        load_data(f"folder:{tmp_path}")


def test_class_folders_without_images(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="has no images: expected .png"):
        load_data(f"folder:{tmp_path}")


def test_one_empty_class_folder_is_named(tmp_path):
    _image(tmp_path / "a" / "0.png", 3)
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match="class folder\\(s\\) b in .* have no images"):
        load_data(f"folder:{tmp_path}")


def test_boxes_csv_that_is_not_text(flat):
    (flat / "boxes.csv").write_bytes(b"path,xmin,ymin,xmax,ymax\n\xff\xfe\xfa,0,0,1,1\n")
    with pytest.raises(DataError, match="cannot read .*boxes.csv"):
        load_data(f"folder:{flat}")
