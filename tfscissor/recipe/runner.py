"""Running a recipe: the plan (which stages, in order), and the run that skips what is up to date.

A stage is skipped when its manifest holds the key of its current config and inputs (the hashes of
everything the stages before it wrote) and its outputs still have the recorded hashes. Otherwise its manifest
is deleted, it runs, and its manifest is written last: a stage killed at any moment has no manifest and runs
again, and the files it had replaced are rewritten, so a rerun ends as an uninterrupted run would. Training
stages checkpoint every epoch into ``.checkpoints/<stage>-<key>/`` and resume from there; the checkpoints of a
stage are removed once its manifest is written.
"""

import contextlib
import logging
import shutil
import time
from pathlib import Path

from tfscissor.data import load_data, parse_spec
from tfscissor.errors import UsageError
from tfscissor.models import load_model
from tfscissor.models.distribute import strategy_for
from tfscissor.progress import note
from tfscissor.recipe.manifest import (
    MANIFESTS,
    data_fingerprint,
    is_current,
    manifest_path,
    read_manifest,
    stage_key,
    write_manifest,
)
from tfscissor.recipe.stages import STAGE_NAMES, STAGES

log = logging.getLogger("tfscissor.recipe")
RUN_LOG = "run.log"
LOGS = "logs"
CHECKPOINTS = ".checkpoints"


def plan(recipe):
    """The stages that ``recipe`` runs, in order."""
    return [stage for stage in STAGES if stage.enabled(recipe)]


def describe_plan(recipe, run_dir=None):
    """The plan as lines of text: where the data comes from, and per stage what it does and, for an existing
    run directory, whether it would run or be skipped. Loads no data and no model."""

    spec = parse_spec(recipe["data"])  # a malformed spec fails here, without touching the data
    size = f", resized to {recipe['image_size']} px" if recipe["image_size"] else ""
    lines = [f"data: {spec}{size} (read when the first stage runs, not in a dry run)", f"seed: {recipe['seed']}"]
    lines.append(f"distribute: {recipe['distribute']['strategy']}")
    upstream, changed = {}, False
    data_files = data_fingerprint(recipe["data"]) if run_dir is not None else None
    for index, stage in enumerate(plan(recipe), 1):
        status = ""
        if run_dir is not None:
            key = stage_key(stage.config(recipe, data_files), dict(upstream))
            manifest = read_manifest(run_dir, stage.name)
            changed = changed or not is_current(manifest, key, run_dir)
            status = "  [run]" if changed else "  [up to date: skip]"
            upstream.update((manifest or {}).get("outputs", {}))
        lines.append(f"{index}. {stage.name}: {stage.describe(recipe)}{status}")
    return lines


# Written into every run folder: a folder that holds files but neither this nor the manifests of an earlier
# tfscissor version is a user's, and a run would overwrite what is in it (report.md, firmware/, ...).
RUN_MARK = ".tfscissor-run"


def check_run_dir(run_dir):
    """Refuse a run folder that holds files tfscissor did not write, before anything runs."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"run folder {run_dir} is a file: choose a folder for the run (-o DIR)")
    if not run_dir.is_dir() or (run_dir / RUN_MARK).is_file() or (run_dir / MANIFESTS).is_dir():
        return
    found = sorted(entry.name for entry in run_dir.iterdir())
    if found:
        shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
        raise UsageError(
            f"run folder {run_dir} holds files tfscissor did not write ({shown}): choose a new or empty folder (-o DIR)"
        )


def run_recipe(recipe, run_dir, *, start=None, progress=False, callbacks=None):
    """Run ``recipe`` (from :func:`load_recipe`) into ``run_dir``; return the summary dict.

    Stages that are up to date are skipped; ``start`` (a stage name) runs that stage and every later one
    regardless. ``callbacks(desc)`` returns Keras callbacks that show training progress (the CLI's bars), or
    None. Writes ``run.log`` (stage start, skip and finish, epochs) and TensorBoard logs under ``logs/``.
    """
    import json

    stages = plan(recipe)
    names = [stage.name for stage in stages]
    if start is not None and start not in names:
        known = ", ".join(names)
        extra = f" (the recipe leaves out {start})" if start in STAGE_NAMES else ""
        raise UsageError(f"--from {start!r} is not a stage of this recipe{extra}: use one of {known}")
    run_dir = Path(run_dir)
    check_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_MARK).touch()
    ctx = Context(recipe, run_dir, progress, callbacks)
    handler = logging.FileHandler(run_dir / RUN_LOG, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    level = log.level
    log.setLevel(logging.INFO)
    # run.log is the run's record; the console shows progress notes (TensorFlow configures the root logger).
    propagate, log.propagate = log.propagate, False
    try:
        log.info("run %s into %s%s", recipe["name"] or "recipe", run_dir, f" from {start}" if start else "")
        forced = False
        data_files = data_fingerprint(recipe["data"])  # walks a data folder once per run, not once per stage
        for index, stage in enumerate(stages, 1):
            forced = forced or stage.name == start
            config = stage.config(recipe, data_files)
            inputs = {path: digest for m in ctx.manifests.values() for path, digest in m["outputs"].items()}
            key = stage_key(config, inputs)
            manifest = read_manifest(run_dir, stage.name)
            if not forced and is_current(manifest, key, run_dir):
                log.info("%s: up to date, skipped", stage.name)
                note(f"[{index}/{len(stages)}] {stage.name}: up to date", progress)
                ctx.manifests[stage.name] = manifest
                continue
            note(f"[{index}/{len(stages)}] {stage.name}: {stage.describe(recipe)}", progress)
            log.info("%s: started", stage.name)
            manifest_path(run_dir, stage.name).unlink(missing_ok=True)
            ctx.key = key
            started = time.time()
            try:
                result = stage.run(ctx)
            except BaseException as err:  # KeyboardInterrupt too: the log says where a run stopped
                # str() of a KeyboardInterrupt is empty: name the exception then, so the line gives a reason.
                log.error(
                    "%s: stopped after %.1f s: %s", stage.name, time.time() - started, str(err) or type(err).__name__
                )
                raise
            outputs = result.pop("outputs")
            result.setdefault("records", [])
            result.setdefault("info", {})
            ctx.manifests[stage.name] = write_manifest(
                run_dir, stage.name, key=key, config=config, inputs=inputs, outputs=list(outputs.values()),
                result={"roles": outputs, **result}, started=started, finished=time.time(),
            )  # fmt: skip
            shutil.rmtree(run_dir / CHECKPOINTS / stage.name, ignore_errors=True)
            log.info("%s: finished in %.1f s", stage.name, time.time() - started)
        with contextlib.suppress(OSError):  # empty once every training stage has finished
            (run_dir / CHECKPOINTS).rmdir()
        log.info("run finished")
    finally:
        log.removeHandler(handler)
        log.propagate = propagate
        log.setLevel(level)
        handler.close()
    return json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))


class Context:
    """What a running stage sees: the recipe, the run directory, the finished stages' manifests, the data set
    (loaded once per size), and the callbacks of a training stage."""

    def __init__(self, recipe, run_dir, progress, callbacks):
        self.recipe = recipe
        self.run_dir = run_dir
        self.progress = progress
        self.make_callbacks = callbacks or (lambda desc: [])
        self.manifests = {}
        self.key = None
        self._data = {}
        self._strategy = None

    def path(self, relative):
        return self.run_dir / relative

    def dataset(self, image_size=None):
        size = image_size or self.recipe["image_size"]
        if size not in self._data:
            self._data[size] = load_data(self.recipe["data"], image_size=size)
        return self._data[size]

    @property
    def strategy(self):
        if self._strategy is None:
            self._strategy = strategy_for(self.recipe["distribute"]["strategy"])
        return self._strategy

    def load(self, relative):
        return load_model(self.path(relative))

    def latest(self, role):
        """The path of the newest artifact of ``role`` (``classifier``, ``int8``, ...), or None."""
        for manifest in reversed(self.manifests.values()):
            if role in manifest["roles"]:
                return manifest["roles"][role]
        return None

    def info(self, stage):
        manifest = self.manifests.get(stage)
        return manifest["info"] if manifest else None

    def records(self):
        return [entry for manifest in self.manifests.values() for entry in manifest["records"]]

    def record_of(self, artifact):
        """The report record of the stage that made ``artifact`` (a model file)."""
        return next(e["record"] for e in self.records() if artifact in (e["record"]["artifact"], e["tflite"]))

    def edgetpu_model(self, device):
        compiled = self.latest("edgetpu_model")
        if compiled is None:
            missing = (self.info("compile") or {}).get("edgetpu_missing") or "the compile stage made no Edge TPU model"
            raise UsageError(f"bench.devices has {device}, but no model was compiled for the Edge TPU: {missing}")
        return self.path(compiled)

    def scratch(self, stage):
        """The stage's checkpoint directory for its current key; other keys' checkpoints are stale."""
        root = self.run_dir / CHECKPOINTS / stage.name
        folder = root / self.key[:16]
        for old in root.glob("*"):
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def callbacks(self, stage, desc, checkpoint=True):
        """Progress bars, TensorBoard logs in ``logs/<stage>/<desc>/`` (a stage's fits apart: a cropper's and a
        classifier's curves share no tags) and (with ``checkpoint``) epoch checkpoints."""
        import keras

        from tfscissor.recipe.checkpoint import EpochCheckpoint

        board = keras.callbacks.TensorBoard(str(self.run_dir / LOGS / stage.name / desc.replace(" ", "-")))
        found = [*self.make_callbacks(desc), board]
        if checkpoint:
            found.append(EpochCheckpoint(self.scratch(stage), stage.name))
        return found
