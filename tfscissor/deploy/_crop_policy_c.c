/* The host's fast crop: CPython glue around the firmware's own crop policy (firmware/tflm/two_stage/crop_policy.c,
 * compiled into this module by setup.py), so evaluation, the bench and Edge TPU hosts crop with the code the
 * firmware runs rather than a second implementation. tfscissor/deploy/crop_policy.py allocates the numpy arrays
 * and chooses when to call this; here the buffers are only checked against the sizes given, then the batch runs
 * with the GIL released. Pixels go through an identity table: the firmware's int8 step belongs to the classifier,
 * and the host's crops stay uint8.
 *
 * Both functions return 0, or -1 when the C policy refuses an image (a window outside it, or sums beyond its
 * integer widths): the caller then crops the batch in numpy, which answers the same or raises its own error. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crop_policy.h"

static int8_t identity[256];

typedef struct {
  Py_ssize_t count;
  int height, width, channels, side;
  Py_ssize_t image_values, crop_values; /* per image, filled by check_shape */
} batch_shape;

/* a * b into *product, 0 when it would not fit a Py_ssize_t (both are non-negative). */
static int multiply(Py_ssize_t a, Py_ssize_t b, Py_ssize_t* product) {
  if (b != 0 && a > PY_SSIZE_T_MAX / b) {
    return 0;
  }
  *product = a * b;
  return 1;
}

/* Each buffer must hold exactly values_per_image values of item_size bytes per image. */
static int check_buffer(const Py_buffer* buffer, const char* name, Py_ssize_t count, Py_ssize_t values_per_image,
                        Py_ssize_t item_size) {
  Py_ssize_t values = -1, bytes = -1; /* -1 in the message: the shape is beyond a Py_ssize_t */
  if (!multiply(count, values_per_image, &values) || !multiply(values, item_size, &bytes) || buffer->len != bytes) {
    PyErr_Format(PyExc_ValueError, "%s holds %zd bytes, not the %zd values of %zd bytes its shape needs", name,
                 buffer->len, values, item_size);
    return 0;
  }
  return 1;
}

static int check_shape(batch_shape* shape) {
  if (shape->count < 0 || shape->height < 1 || shape->width < 1 || shape->channels < 1 || shape->side < 1) {
    PyErr_SetString(PyExc_ValueError, "count must be >= 0 and height, width, channels and side >= 1");
    return 0;
  }
  Py_ssize_t pixels, crop_pixels;
  if (!multiply(shape->height, shape->width, &pixels) || !multiply(pixels, shape->channels, &shape->image_values) ||
      !multiply(shape->side, shape->side, &crop_pixels) ||
      !multiply(crop_pixels, shape->channels, &shape->crop_values)) {
    PyErr_SetString(PyExc_ValueError, "the image or crop shape is beyond a Py_ssize_t");
    return 0;
  }
  return 1;
}

/* A given window [x0, y0, x1, y1) as crop_policy.c's, 0 when a corner lies outside the image (before it could
 * narrow to int wrongly; crop_policy.c checks the rest). */
static int given_window(const int64_t corners[4], const batch_shape* shape, tfs_window* window) {
  for (int k = 0; k < 4; ++k) {
    if (corners[k] < 0 || corners[k] > (k % 2 ? shape->height : shape->width)) {
      return 0;
    }
  }
  window->x0 = (int)corners[0];
  window->y0 = (int)corners[1];
  window->x1 = (int)corners[2];
  window->y1 = (int)corners[3];
  return 1;
}

/* The crops of a batch at windows given (boxes NULL) or computed from float boxes under policy (then written to
 * windows and fallbacks). 0, -1 when crop_policy.c refuses an image, -2 when out of memory. */
static int crop_batch(const uint8_t* images, const batch_shape* shape, const float* boxes,
                      const tfs_crop_policy* policy, int64_t* windows, uint8_t* fallbacks, uint8_t* out) {
  uint32_t* line = malloc((size_t)shape->width * (size_t)shape->channels * sizeof(uint32_t));
  if (line == NULL) {
    return -2;
  }
  int status = 0;
  for (Py_ssize_t n = 0; n < shape->count && status == 0; ++n) {
    int64_t* corners = windows + 4 * n;
    tfs_window window;
    if (boxes == NULL) {
      if (!given_window(corners, shape, &window)) {
        status = -1;
        break;
      }
    } else {
      fallbacks[n] = (uint8_t)tfs_crop_window(boxes + 4 * n, shape->height, shape->width, policy, &window);
      corners[0] = window.x0;
      corners[1] = window.y0;
      corners[2] = window.x1;
      corners[3] = window.y1;
    }
    status = tfs_crop_resize_quantize(images + n * shape->image_values, shape->height, shape->width, shape->channels,
                                      &window, shape->side, identity, line, (int8_t*)(out + n * shape->crop_values));
  }
  free(line);
  return status;
}

/* Checks images and out against the shape and crops the batch without the GIL; 0 with an exception set on
 * failure, else 1 with the batch's status. */
static int run(const Py_buffer* images, const batch_shape* shape, const Py_buffer* out, const float* boxes,
               const tfs_crop_policy* policy, int64_t* windows, uint8_t* fallbacks, int* status) {
  if (!check_buffer(images, "images", shape->count, shape->image_values, 1) ||
      !check_buffer(out, "out", shape->count, shape->crop_values, 1)) {
    return 0;
  }
  Py_BEGIN_ALLOW_THREADS;
  *status = crop_batch(images->buf, shape, boxes, policy, windows, fallbacks, out->buf);
  Py_END_ALLOW_THREADS;
  if (*status == -2) {
    PyErr_NoMemory();
    return 0;
  }
  return 1;
}

static PyObject* resize(PyObject* self, PyObject* args) {
  Py_buffer images, windows, out;
  batch_shape shape;
  if (!PyArg_ParseTuple(args, "y*(niii)iy*w*", &images, &shape.count, &shape.height, &shape.width, &shape.channels,
                        &shape.side, &windows, &out)) {
    return NULL;
  }
  int status = 0;
  const int ok = check_shape(&shape) && check_buffer(&windows, "windows", shape.count, 4, sizeof(int64_t)) &&
                 run(&images, &shape, &out, NULL, NULL, (int64_t*)windows.buf, NULL, &status);
  PyBuffer_Release(&images);
  PyBuffer_Release(&windows);
  PyBuffer_Release(&out);
  return ok ? PyLong_FromLong(status) : NULL;
}

PyDoc_STRVAR(resize_doc,
             "resize(images, (n, height, width, channels), side, windows, out) -> 0, or -1 if C refused an image\n\n"
             "images: n*h*w*c uint8 bytes; windows: n*4 int64 [x0, y0, x1, y1); out: writable n*side*side*c bytes.");

/* A tuple of floats as a PyMem array of doubles; NULL with an exception set when it is not one. */
static double* read_scales(PyObject* tuple, int* count) {
  const Py_ssize_t size = PyTuple_GET_SIZE(tuple);
  if (size > INT_MAX) {
    PyErr_SetString(PyExc_ValueError, "too many scales");
    return NULL;
  }
  double* scales = PyMem_Malloc(size * sizeof(double) + 1); /* + 1: never a request for 0 bytes */
  if (scales == NULL) {
    PyErr_NoMemory();
    return NULL;
  }
  for (Py_ssize_t i = 0; i < size; ++i) {
    scales[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(tuple, i));
    if (scales[i] == -1.0 && PyErr_Occurred()) {
      PyMem_Free(scales);
      return NULL;
    }
  }
  *count = (int)size;
  return scales;
}

static PyObject* crop(PyObject* self, PyObject* args) {
  Py_buffer images, boxes, windows, fallbacks, out;
  batch_shape shape;
  PyObject* scale_list;
  double margin;
  if (!PyArg_ParseTuple(args, "y*(niii)iy*O!dw*w*w*", &images, &shape.count, &shape.height, &shape.width,
                        &shape.channels, &shape.side, &boxes, &PyTuple_Type, &scale_list, &margin, &windows,
                        &fallbacks, &out)) {
    return NULL;
  }
  int scale_count = 0;
  double* scales = read_scales(scale_list, &scale_count);
  const tfs_crop_policy policy = {scales, scale_count, margin};
  int status = 0;
  const int ok = scales != NULL && check_shape(&shape) &&
                 check_buffer(&boxes, "boxes", shape.count, 4, sizeof(float)) &&
                 check_buffer(&windows, "windows", shape.count, 4, sizeof(int64_t)) &&
                 check_buffer(&fallbacks, "fallbacks", shape.count, 1, 1) &&
                 run(&images, &shape, &out, boxes.buf, &policy, windows.buf, fallbacks.buf, &status);
  PyMem_Free(scales);
  PyBuffer_Release(&images);
  PyBuffer_Release(&boxes);
  PyBuffer_Release(&windows);
  PyBuffer_Release(&fallbacks);
  PyBuffer_Release(&out);
  return ok ? PyLong_FromLong(status) : NULL;
}

PyDoc_STRVAR(crop_doc,
             "crop(images, (n, height, width, channels), side, boxes, scales, margin, windows, fallbacks, out)"
             " -> 0, or -1 if C refused an image\n\n"
             "boxes: n*4 float32 normalised boxes; scales: a tuple of floats, () for none; windows (n*4 int64), "
             "fallbacks (n bytes, 0 or 1) and out are written.");

static PyMethodDef methods[] = {
    {"resize", resize, METH_VARARGS, resize_doc},
    {"crop", crop, METH_VARARGS, crop_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_crop_policy_c",
    .m_doc = "The firmware's crop policy in C, for the host (see tfscissor.deploy.crop_policy).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__crop_policy_c(void) {
  uint8_t bytes[256];
  for (int i = 0; i < 256; ++i) {
    bytes[i] = (uint8_t)i;
  }
  memcpy(identity, bytes, sizeof identity); /* int8_t views of the same bytes, without a signed conversion */
  return PyModule_Create(&module);
}
