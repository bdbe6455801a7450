// The image source, like a camera, behind a small interface so that each board supplies its own.
#ifndef TFSCISSOR_{{guard}}_IMAGE_PROVIDER_H_
#define TFSCISSOR_{{guard}}_IMAGE_PROVIDER_H_

#include <cstdint>

// Fills pixels with image_height x image_width x channels uint8 values in HWC order: the whole image, which
// the cropper sees and the crop is cut from. Returns false when no image could be taken.
//
// The reference implementation in image_provider.cc needs no hardware: it returns the sample image from
// sample_data.cc. A board port replaces it with one that reads its camera.
bool GetImage(int image_width, int image_height, int channels, uint8_t* pixels);

#endif  // TFSCISSOR_{{guard}}_IMAGE_PROVIDER_H_
