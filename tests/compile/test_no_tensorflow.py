import subprocess
import sys
from pathlib import Path

import tfscissor


def test_deployment_path_does_not_import_tensorflow(int8_model, tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(int8_model("resnet"))
    code = (
        "import sys\n"
        "from tfscissor.compile import write_tflm_project\n"
        "from tfscissor.deploy import CropPolicy, measure_arena, read_model\n"
        "import tfscissor.bench\n"
        f"info = read_model({str(model)!r})\n"
        f"assert measure_arena({str(model)!r}) > 0\n"
        f"write_tflm_project({str(model)!r}, {str(tmp_path / 'proj')!r}, labels=['a', 'b', 'c'])\n"
        "loaded = [m for m in sys.modules if m == 'tensorflow' or m.startswith('tensorflow.')]\n"
        "assert not loaded, loaded\n"
    )
    root = Path(tfscissor.__file__).resolve().parents[1]  # so the child imports this checkout
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=root)
    assert (tmp_path / "proj" / "model_data.cc").is_file()
