import pytest

from tfscissor.errors import UsageError
from tfscissor.io import atomic_dir, atomic_path, check_not_input, write_bytes, write_text


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.bin"
    write_bytes(target, b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    write_text(target, "new")
    assert target.read_text() == "new"


def test_atomic_path_keeps_the_suffix(tmp_path):
    with atomic_path(tmp_path / "m.keras") as tmp:
        assert tmp.suffix == ".keras"
        tmp.write_text("x")


def test_atomic_dir_replaces_whole_tree(tmp_path):
    target = tmp_path / "project"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
    with atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "c.txt").write_text("3")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]


def test_output_may_not_be_an_input(tmp_path):
    model = tmp_path / "m.keras"
    with pytest.raises(UsageError, match="also an input"):
        check_not_input(str(tmp_path / "." / "m.keras"), model)
    check_not_input(tmp_path / "other.keras", model, None)


def test_artifacts_get_the_umask_mode_not_private(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        write_bytes(tmp_path / "f.bin", b"x")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "a").write_text("1")
    finally:
        os.umask(old)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def _dead_pid():
    """The id of a process that has ended."""
    import subprocess

    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_what_a_killed_writer_left_is_removed_by_the_next_one(tmp_path):
    import os

    dead, alive = _dead_pid(), os.getpid()
    (tmp_path / f".model.keras.{dead}-abc123.tmp.keras").write_text("half")
    (tmp_path / f".fw.{dead}-def456.tmp").mkdir()
    (tmp_path / f".fw.{dead}-def456.tmp" / "model_data.cc").write_text("half")
    (tmp_path / f".fw.{dead}-ghi789.old").mkdir()
    (tmp_path / f".model.keras.{alive}-jkl012.tmp.keras").write_text("still being written")
    (tmp_path / ".model.keras.notes").write_text("the user's")
    write_text(tmp_path / "model.keras", "whole")
    with atomic_dir(tmp_path / "fw") as folder:
        (folder / "model_data.cc").write_text("whole")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["fw", "model.keras", f".model.keras.{alive}-jkl012.tmp.keras", ".model.keras.notes"])
