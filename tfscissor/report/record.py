"""What a run records for its report: ``summary.json`` in the run directory, with one :class:`Stage` per artifact.

``summary.json`` holds ``format`` (:data:`SUMMARY_FORMAT`), the ``recipe``, ``stages`` (a list of
:meth:`Stage.to_dict`, in the order the run made them) and the runner's own table (``columns`` and ``rows``,
which ``tfscissor run`` prints). A stage that a run does not have is simply absent: the report renders the
stages it finds, so a recipe that adds a shrink or cropper stage adds its row and plots by appending a Stage.
"""

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from tfscissor.errors import DataError, UsageError

SUMMARY_FORMAT = "tfscissor.run/1"
METRICS = ("accuracy", "macs", "params", "model_bytes", "arena_bytes")
# Side files a stage may name, each drawn by the report: trim.json (channels kept per layer), a statistics .npz
# (relevance histograms), crop examples .npz (boxes drawn on images, see tfscissor.report.crops).
FILES = ("trim", "statistics", "crop_examples")
EDGETPU_KEYS = {"mapped", "operations", "source"}


@dataclass(frozen=True)
class Stage:
    """One artifact of a run and what was measured on it.

    ``name``: a unique identifier of the stage (baseline, trimmed, shrunk, cropper, int8, compiled);
    ``label``: its row in tables. ``artifact``: the artifact's path relative to the run directory.
    ``metrics``: any of :data:`METRICS`; None means not measured. ``model_bytes`` is the model as a
    ``.tflite`` flatbuffer (float32 for a float stage), ``arena_bytes`` its TFLM tensor arena.
    ``latency_ms``: device -> median latency. ``edgetpu``: ``{"mapped": ops on the Edge TPU, "operations":
    all ops, "source": "predicted" or "compiled"}`` or None. ``command``: the tfscissor command that makes
    the artifact by hand. ``files``: side files by kind (:data:`FILES`), relative to the run directory.
    """

    name: str
    label: str
    artifact: str
    metrics: dict | None = None
    latency_ms: dict | None = None
    edgetpu: dict | None = None
    command: str | None = None
    files: dict | None = None

    def __post_init__(self):
        for field, given, known in (("metrics", self.metrics, METRICS), ("files", self.files, FILES)):
            unknown = sorted(set(given or {}) - set(known))
            if unknown:
                raise ValueError(
                    f"stage {self.name!r}: unknown {field} {', '.join(unknown)}; known: {', '.join(known)}"
                )
        if self.edgetpu is not None and set(self.edgetpu) != EDGETPU_KEYS:
            raise ValueError(
                f"stage {self.name!r}: edgetpu must have exactly the keys {', '.join(sorted(EDGETPU_KEYS))}"
            )
        # Every metric present (None where not measured), so that readers index without guarding.
        object.__setattr__(self, "metrics", {key: (self.metrics or {}).get(key) for key in METRICS})
        object.__setattr__(self, "latency_ms", dict(self.latency_ms or {}))
        object.__setattr__(self, "files", dict(self.files or {}))

    @property
    def slug(self):
        """The name as it can appear in a file name."""
        return re.sub(r"[^A-Za-z0-9_-]+", "_", self.name)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        return cls(**data)


def read_run(run_dir):
    """The summary dict and its :class:`Stage` list of the run in ``run_dir``, each named file checked to exist.

    A path that is no run directory is a UsageError; a summary that is corrupt, from an older tfscissor, or
    names a file that is gone is a DataError. Both say to rerun the recipe.
    """
    run_dir = Path(run_dir)
    rerun = f"run `tfscissor run RECIPE -o {run_dir}`"
    path = run_dir / "summary.json"
    if not run_dir.is_dir():
        raise UsageError(f"run directory {run_dir} not found: {rerun} first")
    if not path.is_file():
        raise UsageError(f"{run_dir} is not a run directory (it has no summary.json): {rerun} first")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path} is unreadable ({err}): {rerun} again") from err
    if not isinstance(summary, dict) or summary.get("format") != SUMMARY_FORMAT:
        raise DataError(f"{path} is not a {SUMMARY_FORMAT} summary (an older tfscissor wrote it?): {rerun} again")
    try:
        stages = [Stage.from_dict(stage) for stage in summary["stages"]]
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{path} has a malformed stage ({err}): {rerun} again") from err
    names = [stage.name for stage in stages]
    if not stages or len(set(names)) != len(names):
        raise DataError(f"{path} must list stages with distinct names, got {names}: {rerun} again")
    for stage in stages:
        for relative in (stage.artifact, *stage.files.values()):
            if not (run_dir / relative).exists():
                raise DataError(f"{run_dir / relative} ({stage.label}) is missing: {rerun} again")
    return summary, stages
