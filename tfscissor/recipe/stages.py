"""The stages of a recipe, in the order they run. Each declares when it runs, the slice of the recipe it depends
on, and ``run(ctx)``, which writes its artifacts into the run directory (every file atomically) and returns
what its manifest records: ``outputs`` (artifact role -> path relative to the run directory), ``records``
(:class:`tfscissor.report.record.Stage` dicts for the report, each with the ``tflite`` it benchmarks) and
``info``. Every stage reads its inputs back from the files earlier stages wrote, so a stage runs the same
whether the stages before it ran in this process or in an earlier, interrupted one.
"""

import json

from tfscissor.bench import bench
from tfscissor.compile import analyse_edgetpu, write_tflm_project
from tfscissor.compile.bundle import write_edgetpu_bundle, write_tflite_bundle
from tfscissor.crop.pipeline import TwoStage
from tfscissor.crop.stage import run_crop
from tfscissor.errors import UsageError
from tfscissor.io import write_bytes, write_text
from tfscissor.models import build_model, load_model, save_model
from tfscissor.models.training import check_input, evaluate_classifier, train_classifier
from tfscissor.progress import note
from tfscissor.quantize import run_quantize
from tfscissor.recipe import commands
from tfscissor.recipe.manifest import file_hash
from tfscissor.recipe.records import float_metrics, pipeline_metrics, record, stem, tflite_metrics
from tfscissor.recipe.summary import write_summary
from tfscissor.report import save_crop_examples, write_report

DATA_KEYS = ("data", "image_size", "seed")


class Stage:
    name = ""
    sections = ()  # recipe sections (besides DATA_KEYS) whose values decide the stage's work

    def enabled(self, recipe):
        return True

    def config(self, recipe, data_files):
        """What decides the stage's work; ``data_files`` is the data's fingerprint, taken once per run."""
        config = {key: recipe[key] for key in (*DATA_KEYS, *self.sections)}
        return {**config, "data_files": data_files}

    def describe(self, recipe):
        raise NotImplementedError

    def run(self, ctx):
        raise NotImplementedError


class Train(Stage):
    name = "train"
    sections = ("model", "train", "distribute")

    def config(self, recipe, data_files):
        config = super().config(recipe, data_files)
        given = recipe["model"]["path"]
        if given is not None:  # the user's model is an input: a new file of the same name is new work
            config["model_sha256"] = file_hash(given) if _exists(given) else "missing"
        return config

    def describe(self, recipe):
        model, train = recipe["model"], recipe["train"]
        if model["path"]:
            return f"take the trained model {model['path']} as the baseline -> baseline.keras"
        args = f" {json.dumps(model['args'])}" if model["args"] else ""
        return (
            f"build {model['name']}{args}, train {train['epochs']} epochs (batch {train['batch_size']}, "
            f"{train['optimizer']} lr {train['lr']:g}, {train['schedule']}) -> baseline.keras"
        )

    def run(self, ctx):
        recipe = ctx.recipe
        dataset = ctx.dataset()
        model_spec, train = recipe["model"], recipe["train"]
        if model_spec["path"]:
            model = load_model(model_spec["path"])
            check_input(model, dataset.image_shape, dataset.spec)
        else:
            try:
                args = {k: tuple(v) if isinstance(v, list) else v for k, v in model_spec["args"].items()}
                model = build_model(
                    model_spec["name"], dataset.image_shape, dataset.num_classes, seed=recipe["seed"], **args
                )
            except TypeError as err:
                raise UsageError(f"recipe model.args do not fit {model_spec['name']!r}: {err}") from err
            train_classifier(
                model,
                dataset,
                epochs=train["epochs"],
                batch_size=train["batch_size"],
                learning_rate=train["lr"],
                seed=recipe["seed"],
                callbacks=ctx.callbacks(self, "train"),
                strategy=ctx.strategy,
            )
        save_model(model, ctx.path("baseline.keras"))
        accuracy = evaluate_classifier(model, dataset.val)
        baseline = record(
            "baseline", "baseline (float)", "baseline.keras", tflite="baseline.tflite",
            metrics=float_metrics(ctx, model, "baseline.tflite", accuracy), command=commands.train(recipe),
        )  # fmt: skip
        info = {"class_names": list(dataset.class_names), "image_shape": list(dataset.image_shape)}
        return {
            "outputs": {"classifier": "baseline.keras", "float": "baseline.tflite"},
            "records": [baseline],
            "info": info,
        }


def _exists(path):
    from pathlib import Path

    return Path(path).is_file()


class Trim(Stage):
    name = "trim"
    sections = ("trim", "distribute")

    def config(self, recipe, data_files):
        return {**super().config(recipe, data_files), "batch_size": recipe["train"]["batch_size"]}

    def describe(self, recipe):
        trim = recipe["trim"]
        policy = next(
            f"{key} {trim[key]}"
            for key in ("ratio", "min_relevance", "target_macs", "target_params")
            if trim[key] is not None
        )
        tune = f", fine-tune {trim['fine_tune_epochs']} epochs" if trim["fine_tune_epochs"] else ""
        return f"{trim['criterion']} statistics on {trim['samples']} images, trim to {policy} in {trim['rounds']} round(s){tune} -> trimmed.keras"

    def run(self, ctx):
        from tfscissor.trim.stage import run_trim

        recipe = ctx.recipe
        trim = dict(recipe["trim"])
        source = ctx.latest("classifier")
        result = run_trim(
            ctx.load(source),
            ctx.dataset(),
            samples=trim.pop("samples"),
            fine_tune_epochs=trim.pop("fine_tune_epochs"),
            learning_rate=trim.pop("lr"),
            batch_size=recipe["train"]["batch_size"],
            seed=recipe["seed"],
            callbacks=ctx.callbacks(self, "fine-tune"),
            progress=ctx.progress,
            strategy=ctx.strategy,
            **trim,
        )
        save_model(result.model, ctx.path("trimmed.keras"))
        result.statistics.save(ctx.path("statistics.npz"))
        write_text(ctx.path("trim.json"), json.dumps(result.report, indent=2))
        trimmed = record(
            "trimmed", "trimmed (float)", "trimmed.keras", tflite="trimmed.tflite",
            metrics=float_metrics(ctx, result.model, "trimmed.tflite", result.report["accuracy_after"]),
            command=commands.trim(recipe, source), files={"trim": "trim.json", "statistics": "statistics.npz"},
        )  # fmt: skip
        outputs = {
            "classifier": "trimmed.keras",
            "float": "trimmed.tflite",
            "trim": "trim.json",
            "statistics": "statistics.npz",
        }
        return {"outputs": outputs, "records": [trimmed]}


class Shrink(Stage):
    name = "shrink"
    sections = ("shrink", "cropper")

    def enabled(self, recipe):
        return recipe["shrink"]["budget"] is not None

    def describe(self, recipe):
        shrink = recipe["shrink"]
        crops = " on the cropper's crops, the cropper counted in the budget," if recipe["cropper"]["enabled"] else ""
        return (
            f"compound search{crops} ({shrink['search']}, score {shrink['score']}) over depths {shrink['depths']}, widths "
            f"{shrink['widths']}, resolutions {shrink['resolutions'] or 'the model own'} to budget {shrink['budget']}"
            f"{', distilled from the classifier before it' if shrink['distill'] else ''} -> shrunk.keras"
        )

    def run(self, ctx):
        from tfscissor.shrink import parse_budget, run_shrink

        shrink = ctx.recipe["shrink"]
        source = ctx.latest("classifier")
        cropper = ctx.load(ctx.latest("cropper")) if ctx.recipe["cropper"]["enabled"] else None
        # With a cropper, the teacher is the whole-image classifier, seeing the whole images; without (or for
        # a crop stage recorded before it named its source), the classifier itself.
        crop_info = (ctx.info("crop") or {}) if cropper is not None and shrink["distill"] else {}
        teacher = crop_info.get("whole_image_classifier")
        result = run_shrink(
            ctx.load(source),
            ctx.dataset(),
            parse_budget(shrink["budget"]),
            cropper=cropper,
            depths=tuple(shrink["depths"]),
            widths=tuple(shrink["widths"]),
            resolutions=tuple(shrink["resolutions"]) if shrink["resolutions"] else None,
            refine_steps=3 if shrink["search"] == "refine" else 0,
            calibration=shrink["calibration"],
            score=shrink["score"],
            top=shrink["top"],
            fine_tune_epochs=shrink["fine_tune_epochs"],
            learning_rate=shrink["lr"],
            distill=shrink["distill"],
            teacher=ctx.load(teacher) if teacher is not None else None,
            seed=ctx.recipe["seed"],
            # The search keeps its own per-candidate resume file: a killed search continues from it.
            resume=ctx.scratch(self) / "search.json",
            progress=lambda row: note(f"candidate {row['candidate']}", ctx.progress),
            callbacks=ctx.callbacks(self, "fine-tune", checkpoint=False),
        )
        save_model(result.model, ctx.path("shrunk.keras"))
        chosen = next(row for row in result.rows if row["candidate"] == str(result.candidate))
        write_text(
            ctx.path("shrink.json"), json.dumps({"chosen": str(result.candidate), "rows": result.rows}, indent=2)
        )
        metrics = float_metrics(ctx, result.model, "shrunk.tflite", chosen["accuracy"])
        if cropper is not None:  # the pipeline's figures, as the crop stage's row has them
            metrics = pipeline_metrics(ctx.record_of("cropper.keras")["metrics"], metrics, chosen["accuracy"])
        shrunk = record(
            "shrunk", f"shrunk {result.candidate}{' crop-then-classify' if cropper is not None else ''} (float)",
            "shrunk.keras", tflite="shrunk.tflite", cropper="cropper.tflite" if cropper is not None else None,
            metrics=metrics, command=commands.shrink(ctx.recipe, source, teacher),
        )  # fmt: skip
        return {
            "outputs": {"classifier": "shrunk.keras", "float": "shrunk.tflite", "shrink": "shrink.json"},
            "records": [shrunk],
        }


LABELS = {"auto": "the data's boxes (Grad-CAM where it has none)", "boxes": "the data's boxes", "cam": "Grad-CAM boxes"}


class Crop(Stage):
    name = "crop"
    sections = ("cropper", "distribute")

    def config(self, recipe, data_files):
        return {**super().config(recipe, data_files), "batch_size": recipe["train"]["batch_size"]}

    def enabled(self, recipe):
        return recipe["cropper"]["enabled"]

    def describe(self, recipe):
        crop = recipe["cropper"]
        side = crop["resolution"] or "the classifier's own side"
        return (
            f"train a cropper on {LABELS[crop['labels']]} ({crop['epochs']} epochs), fine-tune the classifier on its "
            f"crops at {side} ({crop['finetune_epochs']} epochs{', distilled from it on whole images' if crop['distill'] else ''})"
            " -> cropper.keras, cropped.keras"
        )

    def run(self, ctx):
        recipe, crop = ctx.recipe, ctx.recipe["cropper"]
        source = ctx.latest("classifier")
        dataset = ctx.dataset()
        # No epoch checkpoints here: each epoch's crops are drawn from its index, which a resumed fit would not
        # restart at, so a killed crop stage runs again from its start and gives the same models.
        result = run_crop(
            dataset,
            ctx.load(source),
            labels=crop["labels"],
            cropper_options={key: crop[key] for key in ("view", "width") if crop[key] is not None},
            epochs=crop["epochs"],
            learning_rate=crop["lr"],
            resolution=crop["resolution"],
            mix=crop["mix"],
            finetune_epochs=crop["finetune_epochs"],
            finetune_learning_rate=crop["finetune_lr"],
            distill=crop["distill"],
            batch_size=recipe["train"]["batch_size"],
            seed=recipe["seed"],
            cropper_callbacks=ctx.callbacks(self, "cropper", checkpoint=False),
            callbacks=ctx.callbacks(self, "classifier on crops", checkpoint=False),
            strategy=ctx.strategy,
        )
        trained, cropper, model = result.cropper, result.cropper.model, result.finetuned.model
        resolution, report = result.finetuned.resolution, result.finetuned.after
        save_model(cropper, ctx.path("cropper.keras"))
        save_model(model, ctx.path("cropped.keras"))
        save_crop_examples(
            ctx.path("crop_examples.npz"),
            dataset.val.images[:8],
            result.finetuned.val_boxes[:8],
            dataset.val.boxes[:8] if dataset.has_boxes else None,
        )
        write_text(ctx.path("crop.json"), json.dumps({"cropper": trained.report, "pipeline": report}, indent=2))
        cropper_metrics = float_metrics(ctx, cropper, "cropper.tflite")
        cropper_record = record(
            "cropper", "cropper (float)", "cropper.keras", metrics=cropper_metrics,
            command=commands.crop_train(recipe, source), files={"crop_examples": "crop_examples.npz"},
        )  # fmt: skip
        classifier_metrics = float_metrics(ctx, model, "cropped.tflite")
        cropped = record(
            "cropped", f"crop-then-classify at {resolution} px (float)", "cropped.keras",
            tflite="cropped.tflite", cropper="cropper.tflite",
            metrics=pipeline_metrics(cropper_metrics, classifier_metrics, report["accuracy"]),
            command=commands.crop_finetune(recipe, source, resolution),
        )  # fmt: skip
        outputs = {
            "cropper": "cropper.keras",
            "cropper_float": "cropper.tflite",
            "classifier": "cropped.keras",
            "float": "cropped.tflite",
            "crop": "crop.json",
            "crop_examples": "crop_examples.npz",
        }
        # The shrink stage distils from the whole-image classifier this stage started from.
        return {"outputs": outputs, "records": [cropper_record, cropped], "info": {"whole_image_classifier": source}}


class Quantize(Stage):
    name = "quantize"
    sections = ("quantize", "cropper")

    def describe(self, recipe):
        quantize = recipe["quantize"]
        method = (
            "post-training"
            if quantize["method"] == "ptq"
            else f"quantisation-aware training ({quantize['epochs']} epochs)"
        )
        both = " (cropper and classifier)" if recipe["cropper"]["enabled"] else ""
        return f"full int8{both}, {method}, {quantize['samples']} calibration images -> *_int8.tflite"

    def run(self, ctx):
        recipe, quantize = ctx.recipe, ctx.recipe["quantize"]
        source = ctx.latest("classifier")
        model = ctx.load(source)
        two_stage = recipe["cropper"]["enabled"]
        dataset = ctx.dataset() if two_stage else ctx.dataset(int(model.input_shape[1]))
        name, cropper_path = f"{stem(source)}_int8.tflite", "cropper_int8.tflite" if two_stage else None
        pipeline = None
        if two_stage:
            pipeline = TwoStage(ctx.load(ctx.latest("cropper")), model)
        result = run_quantize(
            model, dataset, method=quantize["method"], pipeline=pipeline, samples=quantize["samples"],
            epochs=quantize["epochs"], learning_rate=quantize["lr"], seed=recipe["seed"],
            callbacks=ctx.make_callbacks("QAT"), evaluate_float=False,  # the crop stage's record has it
        )  # fmt: skip
        float_record = ctx.record_of(source)
        if two_stage:
            tflite = result.classifier
            write_bytes(ctx.path(cropper_path), result.cropper)
            cropper = tflite_metrics(result.cropper, metrics=ctx.record_of("cropper.keras")["metrics"])
            classifier = tflite_metrics(tflite, model=model)
            metrics = pipeline_metrics(cropper, classifier, result.int8_report["accuracy"])
        else:
            tflite = result.tflite
            metrics = tflite_metrics(tflite, metrics=float_record["metrics"], accuracy=result.int8_accuracy)
        write_bytes(ctx.path(name), tflite)
        analysis = analyse_edgetpu(tflite)
        int8 = record(
            "int8",
            float_record["label"].removesuffix(" (float)") + " int8",
            name,
            metrics=metrics,
            edgetpu={"mapped": analysis.mapped, "operations": len(analysis.verdicts), "source": "predicted"},
            command=commands.quantize(recipe, source, name, cropper_path),
            tflite=name,
            cropper=cropper_path,
        )
        outputs = {"int8": name, **({"cropper_int8": cropper_path} if two_stage else {})}
        return {"outputs": outputs, "records": [int8]}


class Compile(Stage):
    name = "compile"
    sections = ("compile",)

    def config(self, recipe, data_files):
        return {"compile": recipe["compile"]}

    def describe(self, recipe):
        board = f" (checked against {recipe['compile']['board']})" if recipe["compile"]["board"] else ""
        places = {"tflm": f"firmware/{board}", "tflite": "tflite/", "edgetpu": "edgetpu/"}
        return ", ".join(f"{t} -> {places[t]}" for t in recipe["compile"]["targets"]) or "no targets"

    def run(self, ctx):
        targets, board = ctx.recipe["compile"]["targets"], ctx.recipe["compile"]["board"]
        model = ctx.path(ctx.latest("int8"))
        cropper_name = ctx.latest("cropper_int8")
        cropper = ctx.path(cropper_name) if cropper_name else None
        labels = ctx.info("train")["class_names"]
        int8 = ctx.record_of(ctx.latest("int8"))
        outputs, records, info = {}, [], {}
        name = model.stem
        shape = {"macs": int8["metrics"]["macs"], "params": int8["metrics"]["params"]}  # what every target runs
        if "tflm" in targets:
            project = write_tflm_project(
                model, ctx.path("firmware"), labels=labels, name=name, cropper=cropper, board=board
            )
            outputs["firmware"] = "firmware"
            parts = [part for part in (project, project.cropper) if part is not None]
            configured = {
                "model_bytes": sum(part.model_bytes for part in parts),
                "arena_bytes": sum(part.arena_bytes for part in parts),
            }
            records.append(
                record(
                    "compiled",
                    "TFLM project",
                    "firmware/",
                    metrics={**shape, **configured},
                    command=commands.compile_for(
                        ctx.recipe, model.name, "tflm", "firmware", labels=labels, cropper=cropper_name, name=name
                    ),
                )
            )
        if "tflite" in targets:
            write_tflite_bundle(model, ctx.path("tflite"), labels=labels, cropper=cropper)
            outputs["tflite_bundle"] = "tflite"
            records.append(
                record(
                    "tflite_bundle",
                    "tflite bundle",
                    "tflite/",
                    metrics=shape,
                    command=commands.compile_for(
                        ctx.recipe, model.name, "tflite", "tflite", labels=labels, cropper=cropper_name
                    ),
                )
            )
        if "edgetpu" in targets:
            bundle = write_edgetpu_bundle(model, ctx.path("edgetpu"), labels=labels, cropper=cropper)
            outputs["edgetpu"] = "edgetpu"
            # Without Coral's compiler the bundle holds the predicted mapping: the run goes on, and its summary
            # says so once.
            info["edgetpu_compiled"] = not bundle.missing
            info["edgetpu_missing"] = bundle.missing or None
            if not bundle.missing:
                outputs["edgetpu_model"] = "edgetpu/classifier_edgetpu.tflite"
            analysis, compiled = bundle.analyses["classifier"], bundle.compiled.get("classifier")
            mapping = {
                "mapped": compiled.mapped if compiled else analysis.mapped,
                "operations": len(analysis.verdicts),
                "source": "compiled" if compiled else "predicted",
            }
            records.append(
                record(
                    "edgetpu",
                    "Edge TPU bundle",
                    "edgetpu/",
                    metrics=shape,
                    edgetpu=mapping,
                    command=commands.compile_for(
                        ctx.recipe, model.name, "edgetpu", "edgetpu", labels=labels, cropper=cropper_name
                    ),
                )
            )
        return {"outputs": outputs, "records": records, "info": info}


class Bench(Stage):
    name = "bench"
    sections = ("bench",)

    def config(self, recipe, data_files):
        return {"bench": recipe["bench"]}

    def enabled(self, recipe):
        return bool(recipe["bench"]["devices"])

    def describe(self, recipe):
        bench = recipe["bench"]
        return f"{', '.join(bench['devices'])}: {bench['runs']} runs after {bench['warmup']} warm-up, every model"

    def run(self, ctx):
        settings = ctx.recipe["bench"]
        latency = {}
        for entry in ctx.records():
            if entry["tflite"] is None:
                continue
            int8 = entry["record"]["name"] == "int8"
            for device in settings["devices"]:
                kind = device.partition(":")[0]
                if kind != "cpu" and not int8:
                    continue  # TFLM and the Edge TPU run int8 models only
                model, cropper = ctx.path(entry["tflite"]), entry["cropper"] and ctx.path(entry["cropper"])
                if kind in ("usb", "pci"):
                    model = ctx.edgetpu_model(device)
                options = {"num_threads": settings["threads"]} if kind == "cpu" else {}
                result = bench(
                    model, device=device, cropper=cropper, runs=settings["runs"], warmup=settings["warmup"], **options
                )
                # A pipeline's latency is both stages' and the host crop's: the whole image to the class.
                latency.setdefault(entry["record"]["name"], {})[device] = round(result["total"]["median_ms"], 3)
        write_text(ctx.path("bench.json"), json.dumps(latency, indent=2))
        return {"outputs": {"bench": "bench.json"}, "info": {"latency_ms": latency}}


class Report(Stage):
    name = "report"

    def config(self, recipe, data_files):
        return {"recipe": recipe}

    def describe(self, recipe):
        return "summary.json, summary.md, report.md, report.html"

    def run(self, ctx):
        write_summary(ctx)
        write_report(ctx.run_dir)
        outputs = {
            "summary": "summary.json",
            "summary_md": "summary.md",
            "report_md": "report.md",
            "report_html": "report.html",
        }
        return {"outputs": outputs}


# Crop before shrink: with a cropper, the compound search runs on its crops and counts its costs in the budget.
STAGES = (Train(), Trim(), Crop(), Shrink(), Quantize(), Compile(), Bench(), Report())
STAGE_NAMES = tuple(stage.name for stage in STAGES)
