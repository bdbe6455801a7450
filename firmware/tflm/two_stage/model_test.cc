// Host test of the two stages on the sample image, each against its known-good result: the cropper's box
// (within 1 step), the crop policy's window for the known-good box (exactly), the classifier's scores for that
// crop (within 1 step). Stops at the first error and returns non-zero, so `make test` fails.
#include <cstdio>

#include "crop_policy.h"
#include "cropper_data.h"
#include "model_data.h"
#include "model_settings.h"
#include "op_resolver.h"
#include "sample_data.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {
alignas(16) static uint8_t cropper_arena[kCropperArenaSize];
alignas(16) static uint8_t classifier_arena[kTensorArenaSize];
static uint32_t crop_line[kImageCols * kNumChannels];

int Fail(const char* what) {
  std::printf("FAIL: %s\n", what);
  return 1;
}

// True when the interpreter's input and output are int8 tensors of the sizes model_settings.h states.
bool IsInt8(tflite::MicroInterpreter& interpreter, int input_bytes, int output_bytes) {
  const TfLiteTensor* input = interpreter.input(0);
  const TfLiteTensor* output = interpreter.output(0);
  return input->type == kTfLiteInt8 && static_cast<int>(input->bytes) == input_bytes &&
         output->type == kTfLiteInt8 && static_cast<int>(output->bytes) == output_bytes;
}

// Non-zero (and a message) if an int8 output is more than kSampleTolerance from the known-good one.
int Compare(const char* what, const int8_t* got, const int8_t* expected, int count) {
  for (int i = 0; i < count; ++i) {
    const int difference = got[i] - expected[i];
    if (difference > kSampleTolerance || -difference > kSampleTolerance) {
      std::printf("FAIL: %s %d is %d, expected %d +- %d\n", what, i, got[i], expected[i], kSampleTolerance);
      return 1;
    }
  }
  return 0;
}
}  // namespace

int main() {
  tflite::InitializeTarget();
  const tflite::Model* cropper_model = tflite::GetModel(g_{{name}}_cropper);
  const tflite::Model* classifier_model = tflite::GetModel(g_{{name}});
  if (cropper_model->version() != TFLITE_SCHEMA_VERSION || classifier_model->version() != TFLITE_SCHEMA_VERSION) {
    return Fail("schema version");
  }
  static ModelOpResolver resolver;
  if (RegisterOps(resolver) != kTfLiteOk) return Fail("registering ops");
  static tflite::MicroInterpreter cropper(cropper_model, resolver, cropper_arena, kCropperArenaSize);
  static tflite::MicroInterpreter classifier(classifier_model, resolver, classifier_arena, kTensorArenaSize);
  if (cropper.AllocateTensors() != kTfLiteOk) return Fail("AllocateTensors for the cropper (arena too small?)");
  if (classifier.AllocateTensors() != kTfLiteOk) return Fail("AllocateTensors for the classifier (arena too small?)");
  if (!IsInt8(cropper, kImageSize, kBoxValues)) return Fail("cropper input or output size or type");
  if (!IsInt8(classifier, kMaxImageSize, kCategoryCount)) return Fail("classifier input or output size or type");

  tfs_quantize_pixels(g_sample_image, kImageSize, kCropperInputTable, cropper.input(0)->data.int8);
  if (cropper.Invoke() != kTfLiteOk) return Fail("Invoke for the cropper");
  if (Compare("box value", cropper.output(0)->data.int8, g_sample_box, kBoxValues) != 0) return 1;

  float box[kBoxValues];
  tfs_dequantize_box(g_sample_box, kCropperOutputScale, kCropperOutputZeroPoint, box);
  const tfs_crop_policy policy = {kCropScales, kCropScaleCount, kCropMargin};
  tfs_window window;
  const bool fallback = tfs_crop_window(box, kImageRows, kImageCols, &policy, &window) != 0;
  if (window.x0 != g_sample_window[0] || window.y0 != g_sample_window[1] || window.x1 != g_sample_window[2] ||
      window.y1 != g_sample_window[3] || fallback != g_sample_fallback) {
    std::printf("FAIL: window [%d, %d, %d, %d)%s, expected [%d, %d, %d, %d)%s\n", window.x0, window.y0, window.x1,
                window.y1, fallback ? " (fallback)" : "", g_sample_window[0], g_sample_window[1], g_sample_window[2],
                g_sample_window[3], g_sample_fallback ? " (fallback)" : "");
    return 1;
  }
  if (tfs_crop_resize_quantize(g_sample_image, kImageRows, kImageCols, kNumChannels, &window, kNumRows, kInputTable,
                               crop_line, classifier.input(0)->data.int8) != 0) {
    return Fail("cropping");
  }
  if (classifier.Invoke() != kTfLiteOk) return Fail("Invoke for the classifier");
  if (Compare("score", classifier.output(0)->data.int8, g_sample_output, kCategoryCount) != 0) return 1;

  std::printf("PASS: box, window and %d scores as known; arenas %d of %d and %d of %d bytes used\n", kCategoryCount,
              static_cast<int>(cropper.arena_used_bytes()), kCropperArenaSize,
              static_cast<int>(classifier.arena_used_bytes()), kTensorArenaSize);
  return 0;
}
