"""tfscissor: make Keras image classifiers small and fast for microcontrollers and the Coral Edge TPU."""

__version__ = "0.1.0"
