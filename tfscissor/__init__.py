"""tfscissor: make Keras image classifiers small and fast for microcontrollers and the Coral Edge TPU.

The public API is listed in ``__all__``; each name is imported on first use, so ``import tfscissor`` (and the
CLI's ``--help``) does not load TensorFlow.
"""

from tfscissor.lazy import lazy_api

__version__ = "0.1.0"

# Public name -> the module that defines it.
_API = {
    "load_data": "tfscissor.data",
    "parse_spec": "tfscissor.data",
    "Dataset": "tfscissor.data",
    "build_model": "tfscissor.models",
    "load_model": "tfscissor.models",
    "save_model": "tfscissor.models",
    "register_builder": "tfscissor.models",
    "train_classifier": "tfscissor.models.training",
    "evaluate_classifier": "tfscissor.models.training",
    "strategy_for": "tfscissor.models.distribute",
    "profile_model": "tfscissor.analysis",
    "ActivationStatistics": "tfscissor.trim",
    "collect_statistics": "tfscissor.trim",
    "find_groups": "tfscissor.trim",
    "trim_model": "tfscissor.trim",
    "register_criterion": "tfscissor.trim",
    "register_handler": "tfscissor.trim",
    "trim_classifier": "tfscissor.trim",
    "run_trim": "tfscissor.trim",
    "tap_names": "tfscissor.trim",
    "CropPolicy": "tfscissor.deploy",
    "TwoStage": "tfscissor.crop",
    "box_labels": "tfscissor.crop",
    "train_cropper": "tfscissor.crop",
    "train_on_crops": "tfscissor.crop",
    "build_cropper": "tfscissor.models.cropper",
    "fitted_cropper": "tfscissor.crop.sizing",
    "find_blocks": "tfscissor.shrink",
    "remove_blocks": "tfscissor.shrink",
    "quantize_int8": "tfscissor.quantize",
    "quantize_model": "tfscissor.quantize",
    "to_tflite": "tfscissor.quantize",
    "TFLiteModel": "tfscissor.deploy",
    "read_model": "tfscissor.deploy",
    "measure_arena": "tfscissor.deploy",
    "write_tflm_project": "tfscissor.compile",
    "flash_project": "tfscissor.compile",
    "bench_cpu": "tfscissor.bench",
    "load_recipe": "tfscissor.recipe",
    "run_recipe": "tfscissor.recipe",
    "write_report": "tfscissor.report",
    "TfscissorError": "tfscissor.errors",
}

__all__ = sorted(_API)


__getattr__, __dir__ = lazy_api("tfscissor", _API)
