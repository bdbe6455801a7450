// Host test: the model, run by TFLM on the sample input, must give the known-good scores. Stops at the first
// error and returns non-zero, so `make test` fails.
#include <cstdio>
#include <cstring>

#include "model_data.h"
#include "model_settings.h"
#include "op_resolver.h"
#include "sample_data.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {
alignas(16) static uint8_t tensor_arena[kTensorArenaSize];

int Fail(const char* what) {
  std::printf("FAIL: %s\n", what);
  return 1;
}
}  // namespace

int main() {
  tflite::InitializeTarget();
  const tflite::Model* model = tflite::GetModel(g_{{name}});
  if (model->version() != TFLITE_SCHEMA_VERSION) return Fail("schema version");

  static ModelOpResolver resolver;
  if (RegisterOps(resolver) != kTfLiteOk) return Fail("registering ops");
  static tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, kTensorArenaSize);
  if (interpreter.AllocateTensors() != kTfLiteOk) return Fail("AllocateTensors (arena too small?)");

  TfLiteTensor* input = interpreter.input(0);
  if (input->type != kTfLiteInt8 || static_cast<int>(input->bytes) != kMaxImageSize) return Fail("input shape or type");
  std::memcpy(input->data.int8, g_sample_input, kMaxImageSize);
  if (interpreter.Invoke() != kTfLiteOk) return Fail("Invoke");

  const TfLiteTensor* output = interpreter.output(0);
  if (output->type != kTfLiteInt8 || static_cast<int>(output->bytes) != kCategoryCount) return Fail("output shape or type");
  for (int i = 0; i < kCategoryCount; ++i) {
    const int got = output->data.int8[i];
    const int expected = g_sample_output[i];
    if (got - expected > kSampleTolerance || expected - got > kSampleTolerance) {
      std::printf("FAIL: score %d (%s) is %d, expected %d +- %d\n", i, kCategoryLabels[i], got, expected,
                  kSampleTolerance);
      return 1;
    }
  }
  std::printf("PASS: %d scores within %d of the known-good output; arena %d of %d bytes used\n", kCategoryCount,
              kSampleTolerance, static_cast<int>(interpreter.arena_used_bytes()), kTensorArenaSize);
  return 0;
}
