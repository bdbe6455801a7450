"""Stage manifests: what a finished stage read, how it was configured, what it wrote (with hashes), measured,
ran with and how long it took. A stage whose manifest is missing did not finish; a stage whose manifest has
the key of its current config and inputs, and whose outputs still have the recorded hashes, is up to date.
"""

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path

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


def stage_key(config, inputs):
    """One hash of a stage's config and its inputs' hashes: equal keys, equal work."""
    text = json.dumps({"config": config, "inputs": inputs}, sort_keys=True)
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
