"""Stage manifests: what a finished stage read, how it was configured, what it wrote (with hashes), measured,
ran with and how long it took. A stage whose manifest is missing did not finish; a stage whose manifest has
the key of its current config and inputs, and whose outputs still have the recorded hashes, is up to date.
"""

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path

from tfscissor import __version__
from tfscissor.data.spec import parse_spec
from tfscissor.io import write_text

MANIFESTS = "manifests"
FORMAT = "tfscissor.stage/1"
PACKAGES = ("tfscissor", "tensorflow", "keras", "numpy", "ai-edge-litert", "tflite-micro")


def file_hash(path):
    """SHA-256 of a file, or of a directory's files (their relative paths and contents, in sorted order)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def data_fingerprint(spec):
    """What the files behind a data spec look like: the relative path, size and modification time of every file
    under each directory the spec names (``folder:``, ``idx:``, ``cluttered:source=idx:``, tfds's ``data_dir``),
    hashed; None for data generated from the spec alone. Edited files change it, so stages rerun on them."""
    import os

    spec = parse_spec(spec)
    places = [spec.arg] if spec.kind in ("folder", "idx") else []
    source = str(spec.options.get("source", ""))
    places += [source.partition(":")[2]] if source.startswith("idx:") else []
    places += [spec.options["data_dir"]] if "data_dir" in spec.options else []
    if not places:
        return None
    digest = hashlib.sha256()
    for place in places:
        root = Path(os.path.expanduser(str(place)))
        for path in sorted(root.rglob("*")) if root.is_dir() else [root]:
            if path.is_file():
                stat = path.stat()
                digest.update(f"{path.relative_to(root.parent)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def stage_key(config, inputs):
    """One hash of a stage's config, its inputs' hashes and the tfscissor version: equal keys, equal work (another
    version may compute the stage differently, so its artifacts are not reused)."""

    text = json.dumps({"config": config, "inputs": inputs, "tfscissor": __version__}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def versions():
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def manifest_path(run_dir, stage):
    return Path(run_dir) / MANIFESTS / f"{stage}.json"


def read_manifest(run_dir, stage):
    """The stage's manifest, or None where it is missing or unreadable (the stage then runs again)."""
    try:
        manifest = json.loads(manifest_path(run_dir, stage).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


def is_current(manifest, key, run_dir):
    """True when ``manifest`` has ``key`` and every output it lists is on disk with the recorded hash."""
    if manifest is None or manifest.get("key") != key:
        return False
    outputs = manifest.get("outputs", {})
    return all((Path(run_dir) / p).exists() and file_hash(Path(run_dir) / p) == h for p, h in outputs.items())


def write_manifest(run_dir, stage, *, key, config, inputs, outputs, result, started, finished):
    """Hash ``outputs`` (paths relative to ``run_dir``) and write the manifest atomically; return it."""
    manifest = {
        "format": FORMAT,
        "stage": stage,
        "key": key,
        "config": config,
        "inputs": inputs,
        "outputs": {path: file_hash(Path(run_dir) / path) for path in outputs},
        **result,
        "versions": versions(),
        "started": started,
        "finished": finished,
        "seconds": round(finished - started, 3),
    }
    write_text(manifest_path(run_dir, stage), json.dumps(manifest, indent=2) + "\n")
    return manifest
