// Reference image provider with no hardware dependency: it returns the sample image.
#include "image_provider.h"

#include <cstring>

#include "model_settings.h"
#include "sample_data.h"

bool GetImage(int image_width, int image_height, int channels, uint8_t* pixels) {
  if (image_width != kImageCols || image_height != kImageRows || channels != kNumChannels) {
    return false;
  }
  std::memcpy(pixels, g_sample_image, kImageSize);
  return true;
}
