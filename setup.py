"""tfscissor: relevance trimming, Smart Scissor cropping, int8 and Edge TPU / TFLM deployment for Keras CNNs."""

from setuptools import Extension, find_packages, setup

# Pins are the set measured to install and work together (see ../shared/ENVIRONMENT.md):
# tf-keras pulls the full tensorflow wheel, tflite-micro has only pre-releases (so it is pinned exactly),
# tfmot needs scipy and absl-py, tfds imports importlib_resources without declaring it.
INSTALL_REQUIRES = [
    "tensorflow==2.21.*",
    "keras==3.15.*",
    "tf-keras==2.21.*",
    "tensorflow-model-optimization==0.8.1",
    "tensorflow-datasets==4.9.10",
    "importlib_resources>=6",
    "scipy>=1.13",
    "absl-py~=1.4",  # tfmot 0.8.1 requires ~=1.2
    "ai-edge-litert==2.3.*",
    "tflite-micro==0.dev20261023182759",
    "numpy>=2,<3",
    "click>=8.1,<9",
    "pyyaml>=6",
    "tqdm>=4.66",
    "pillow>=10.1",
    "scikit-image>=0.24",
    "scikit-learn>=1.5",
    "matplotlib>=3.8",
    "tensorboard==2.21.*",  # Keras's TensorBoard callback writes nothing without it (recipe training logs)
]

# The host's crop runs the firmware's own C crop policy (tfscissor/deploy/crop_policy.py uses it when built).
# Optional: without a C compiler the install goes on and the host crops in numpy, with the same bytes, slower.
CROP_POLICY_C = Extension(
    "tfscissor.deploy._crop_policy_c",
    sources=["tfscissor/deploy/_crop_policy_c.c", "firmware/tflm/two_stage/crop_policy.c"],
    include_dirs=["firmware/tflm/two_stage"],
    optional=True,
)

setup(
    name="tfscissor",
    version="0.1.0",
    description=__doc__,
    python_requires=">=3.10",
    # The firmware templates live in the top-level firmware/ folder and install as tfscissor.firmware.
    packages=[*find_packages(include=["tfscissor", "tfscissor.*"]), "tfscissor.firmware"],
    package_dir={"tfscissor.firmware": "firmware"},
    # Templates nest: tflm/, ports/<port>/ and ports/esp-idf/main/.
    package_data={"tfscissor.firmware": ["*.md", "*/*", "*/*/*", "*/*/*/*"]},
    ext_modules=[CROP_POLICY_C],
    install_requires=INSTALL_REQUIRES,
    extras_require={"dev": ["pytest>=8", "ruff>=0.6"]},
    entry_points={"console_scripts": ["tfscissor=tfscissor.__main__:main"]},
)
