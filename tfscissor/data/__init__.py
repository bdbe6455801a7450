"""Data sets for tfscissor: the embedded cluttered-object generator, image folders, IDX files and tfds.

Every source is named by a spec string (``cluttered[:key=value,...]``, ``folder:PATH``, ``idx:PATH``,
``tfds:NAME``) and loads into a :class:`Dataset` of uint8 images, int32 labels and, where known,
normalised boxes. Importing this package does not import TensorFlow.
"""

from tfscissor.data.dataset import Dataset, Split
from tfscissor.data.load import load_data
from tfscissor.data.pipeline import to_tf_dataset
from tfscissor.data.spec import DataSpec, parse_spec

__all__ = ["load_data", "parse_spec", "DataSpec", "Dataset", "Split", "to_tf_dataset"]
