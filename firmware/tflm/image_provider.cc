// Reference image provider with no hardware dependency: it returns the sample image.
#include "image_provider.h"

#include <cstring>

#include "model_settings.h"
#include "sample_data.h"

int8_t QuantizePixel(uint8_t pixel) { return kInputTable[pixel]; }

bool GetImage(int image_width, int image_height, int channels, int8_t* image_data) {
  if (image_width != kNumCols || image_height != kNumRows || channels != kNumChannels) {
    return false;
  }
  std::memcpy(image_data, g_sample_input, kMaxImageSize);
  return true;
}
