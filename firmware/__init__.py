"""C/C++ templates for the firmware that tfscissor writes (installed as ``tfscissor.firmware``)."""
