"""A stand-in TFLM tree: the headers and calls the generated project uses, with TFLM's signatures, and no kernels.

TFLM's sources cannot be had here, so this is what lets the tests compile, link and run the generated glue
(``main_functions.cc``, ``op_resolver.h``, ``model_test.cc``, ``main.cc``, the Makefile). It proves the glue is
valid C++ against the API as TFLM declares it (``MicroInterpreter(model, resolver, arena, size)``,
``MicroMutableOpResolver<N>::AddXxx()``, ``GetModel``, ``MicroPrintf`` ...), not that TFLM computes the right
scores: that is checked on the exact model bytes by TFLM's Python interpreter. The fake resolver fails like
TFLM's on a duplicate op or one op too many for ``N``; the fake ``Model::version()`` reads the real flatbuffer.

Like the trees create_tflm_tree.py makes, it comes for a target: ``"cortex_m_generic"`` (the default) hands each
``MicroPrintf`` message to the callback given to ``RegisterDebugLogCallback`` and drops it when none is, and its
``micro_time.cc`` reads the DWT cycle counter unless built with ``PROJECT_GENERATION``; ``"reference"`` prints
to stderr and has no callback. ``cmsis_nn=True`` adds the CMSIS-NN kernels' files, which compile only with
``CMSIS_NN`` defined (``conv.h`` declares ``Register_CONV_2D_INT8()`` inline otherwise, as TFLM's does).
"""

from pathlib import Path

from tfscissor.compile import RESOLVER_METHODS

_COMMON = """#pragma once
#include <cstddef>
#include <cstdint>
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef enum { kTfLiteNoType = 0, kTfLiteFloat32 = 1, kTfLiteInt8 = 9 } TfLiteType;
typedef union { int8_t* int8; uint8_t* uint8; float* f; void* data; } TfLitePtrUnion;
typedef struct { TfLiteType type; TfLitePtrUnion data; size_t bytes; } TfLiteTensor;
"""

_SCHEMA = """#pragma once
#include <cstdint>
#define TFLITE_SCHEMA_VERSION (3)
namespace tflite {
struct Model { uint32_t version() const; };
const Model* GetModel(const void* buf);
}  // namespace tflite
"""

_OP_RESOLVER = """#pragma once
#include "tensorflow/lite/c/common.h"
namespace tflite {
class MicroOpResolver { public: virtual ~MicroOpResolver() = default; };
}  // namespace tflite
"""

_INTERPRETER = """#pragma once
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
namespace tflite {
class MicroInterpreter {
 public:
  MicroInterpreter(const Model* model, const MicroOpResolver& op_resolver, uint8_t* tensor_arena,
                   size_t tensor_arena_size);
  TfLiteStatus AllocateTensors();
  TfLiteStatus Invoke();
  TfLiteTensor* input(size_t index);
  TfLiteTensor* output(size_t index);
  size_t arena_used_bytes() const;
 private:
  uint8_t* arena_;
  size_t arena_size_;
  size_t input_bytes_;
  size_t output_bytes_;
  size_t output_offset_ = 0;
  TfLiteTensor input_{};
  TfLiteTensor output_{};
};
}  // namespace tflite
"""

_SOURCE = """#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include "tensorflow/lite/micro/debug_log.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/system_setup.h"

namespace {
void DebugLine(const char* format, ...) {
  va_list args;
  va_start(args, format);
  DebugLog(format, args);
  va_end(args);
}
uint32_t Read32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
uint16_t Read16(const uint8_t* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }
// -DFAKE_INPUT_BYTES=a,b -DFAKE_OUTPUT_BYTES=c,d: the first interpreter made has a and c, the next b and d.
const size_t kInputBytes[] = {FAKE_INPUT_BYTES};
const size_t kOutputBytes[] = {FAKE_OUTPUT_BYTES};
size_t interpreters_made = 0;
// -DFAKE_OUTPUTS=v,...: every interpreter's output values in turn (c values, then d values); without it every
// output value is 127.
#ifdef FAKE_OUTPUTS
const int8_t kOutputs[] = {FAKE_OUTPUTS};
#endif
}  // namespace

// MicroPrintf as TFLM's micro_log.cc has it: the message, then "\\r\\n", each through the target's DebugLog.
void MicroPrintf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  DebugLog(format, args);
  va_end(args);
  DebugLine("\\r\\n");
}

namespace tflite {
void InitializeTarget() {}
const Model* GetModel(const void* buf) { return static_cast<const Model*>(buf); }
// Field 0 of the root table, found through its vtable, as flatbuffers lays it out.
uint32_t Model::version() const {
  const uint8_t* buf = reinterpret_cast<const uint8_t*>(this);
  const uint8_t* table = buf + Read32(buf);
  const uint8_t* vtable = table - static_cast<int32_t>(Read32(table));
  const uint16_t offset = Read16(vtable) > 4 ? Read16(vtable + 4) : 0;
  return offset ? Read32(table + offset) : 0;
}
MicroInterpreter::MicroInterpreter(const Model*, const MicroOpResolver&, uint8_t* tensor_arena,
                                   size_t tensor_arena_size)
    : arena_(tensor_arena), arena_size_(tensor_arena_size),
      input_bytes_(kInputBytes[interpreters_made % (sizeof(kInputBytes) / sizeof(*kInputBytes))]),
      output_bytes_(kOutputBytes[interpreters_made % (sizeof(kOutputBytes) / sizeof(*kOutputBytes))]) {
  for (size_t i = 0; i < interpreters_made; ++i) output_offset_ += kOutputBytes[i % (sizeof(kOutputBytes) / sizeof(*kOutputBytes))];
  ++interpreters_made;
}
TfLiteStatus MicroInterpreter::AllocateTensors() {
  if (reinterpret_cast<uintptr_t>(arena_) % 16 != 0) return kTfLiteError;
  if (arena_size_ < input_bytes_ + output_bytes_) return kTfLiteError;
  input_ = {kTfLiteInt8, {reinterpret_cast<int8_t*>(arena_)}, input_bytes_};
  output_ = {kTfLiteInt8, {reinterpret_cast<int8_t*>(arena_ + input_bytes_)}, output_bytes_};
  return kTfLiteOk;
}
TfLiteStatus MicroInterpreter::Invoke() {
#ifdef FAKE_MAX_INVOKES
  // -DFAKE_MAX_INVOKES=n: the program exits, flushing its output, when every interpreter has run n times, so that
  // a test can run a port's main(), whose loop never ends.
  static size_t invokes = 0;
  if (invokes++ == FAKE_MAX_INVOKES * interpreters_made) std::exit(0);
#endif
#ifdef FAKE_OUTPUTS
  std::memcpy(output_.data.int8, kOutputs + output_offset_, output_.bytes);
#else
  std::memset(output_.data.int8, 127, output_.bytes);
#endif
  return kTfLiteOk;
}
TfLiteTensor* MicroInterpreter::input(size_t) { return &input_; }
TfLiteTensor* MicroInterpreter::output(size_t) { return &output_; }
size_t MicroInterpreter::arena_used_bytes() const { return input_bytes_ + output_bytes_; }
}  // namespace tflite
"""


def _mutable_resolver():
    methods = "\n".join(
        f"  TfLiteStatus {method}() {{ return Add({i}); }}"
        for i, method in enumerate(sorted(set(RESOLVER_METHODS.values())))
    )
    return f"""#pragma once
#include "tensorflow/lite/micro/micro_op_resolver.h"
namespace tflite {{
template <unsigned int tOpCount>
class MicroMutableOpResolver : public MicroOpResolver {{
 public:
{methods}
 private:
  TfLiteStatus Add(unsigned int id) {{
    for (unsigned int i = 0; i < count_; ++i) if (ids_[i] == id) return kTfLiteError;
    if (count_ >= tOpCount) return kTfLiteError;
    ids_[count_++] = id;
    return kTfLiteOk;
  }}
  unsigned int ids_[tOpCount] = {{}};
  unsigned int count_ = 0;
}};
}}  // namespace tflite
"""


_DEBUG_LOG = """#pragma once
#include <cstdarg>
extern "C" void DebugLog(const char* format, va_list args);
"""

_REFERENCE_DEBUG_LOG = """#include <cstdio>
#include "tensorflow/lite/micro/debug_log.h"
extern "C" void DebugLog(const char* format, va_list args) { std::vfprintf(stderr, format, args); }
"""

_CALLBACK = """#pragma once
extern "C" {
typedef void (*DebugLogCallback)(const char* s);
void RegisterDebugLogCallback(DebugLogCallback callback);
}
"""

_CORTEX_M_DEBUG_LOG = """#include <cstdio>
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"
#include "tensorflow/lite/micro/debug_log.h"
namespace {
DebugLogCallback debug_log_callback = nullptr;
}  // namespace
extern "C" void RegisterDebugLogCallback(DebugLogCallback callback) { debug_log_callback = callback; }
extern "C" void DebugLog(const char* format, va_list args) {
  char buffer[256];
  std::vsnprintf(buffer, sizeof(buffer), format, args);
  if (debug_log_callback != nullptr) debug_log_callback(buffer);
}
"""

# TFLM's reads the DWT cycle counter, which the CMSIS device header declares; the tree has no such header.
_CORTEX_M_MICRO_TIME = """#include <cstdint>
#ifdef CMSIS_DEVICE_ARM_CORTEX_M_XX_HEADER_FILE
#include CMSIS_DEVICE_ARM_CORTEX_M_XX_HEADER_FILE
#endif
namespace tflite {
#if defined(PROJECT_GENERATION)
uint32_t GetCurrentTimeTicks() { return 0; }
#else
uint32_t GetCurrentTimeTicks() { return DWT->CYCCNT; }
#endif
}  // namespace tflite
"""

_CONV_H = """#pragma once
namespace tflite {
struct TFLMRegistration { int kernel; };
TFLMRegistration Register_CONV_2D();
#if defined(CMSIS_NN)
TFLMRegistration Register_CONV_2D_INT8();
#else
inline TFLMRegistration Register_CONV_2D_INT8() { return Register_CONV_2D(); }
#endif
}  // namespace tflite
"""

_CMSIS_NN_CONV = """#include "tensorflow/lite/micro/kernels/conv.h"
namespace tflite {
TFLMRegistration Register_CONV_2D() { return {1}; }
TFLMRegistration Register_CONV_2D_INT8() { return {2}; }
}  // namespace tflite
"""

TARGETS = ("cortex_m_generic", "reference")


def write_fake_tflm(root, target="cortex_m_generic", cmsis_nn=False):
    """Write the fake tree under ``root`` (laid out like create_tflm_tree.py's output for ``target``, with the
    CMSIS-NN kernels when ``cmsis_nn``) and return it."""
    if target not in TARGETS:
        raise ValueError(f"unknown fake TFLM target {target!r}: use one of {', '.join(TARGETS)}")
    root = Path(root)
    files = {
        "tensorflow/lite/c/common.h": _COMMON,
        "tensorflow/lite/schema/schema_generated.h": _SCHEMA,
        "tensorflow/lite/micro/micro_op_resolver.h": _OP_RESOLVER,
        "tensorflow/lite/micro/micro_mutable_op_resolver.h": _mutable_resolver(),
        "tensorflow/lite/micro/micro_interpreter.h": _INTERPRETER,
        "tensorflow/lite/micro/micro_log.h": "#pragma once\nvoid MicroPrintf(const char* format, ...);\n",
        "tensorflow/lite/micro/system_setup.h": "#pragma once\nnamespace tflite {\nvoid InitializeTarget();\n}\n",
        "tensorflow/lite/micro/debug_log.h": _DEBUG_LOG,
        "tensorflow/lite/micro/fake_tflm.cc": _SOURCE,
    }
    if target == "cortex_m_generic":
        files["tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"] = _CALLBACK
        files["tensorflow/lite/micro/cortex_m_generic/debug_log.cc"] = _CORTEX_M_DEBUG_LOG
        files["tensorflow/lite/micro/cortex_m_generic/micro_time.cc"] = _CORTEX_M_MICRO_TIME
    else:
        files["tensorflow/lite/micro/debug_log.cc"] = _REFERENCE_DEBUG_LOG
    if cmsis_nn:
        files["tensorflow/lite/micro/kernels/conv.h"] = _CONV_H
        files["tensorflow/lite/micro/kernels/cmsis_nn/conv.cc"] = _CMSIS_NN_CONV
        files["third_party/cmsis_nn/Source/arm_fake_s8.c"] = "int arm_fake_s8(int x) { return x; }\n"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
