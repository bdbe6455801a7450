// The image source, like a camera, behind a small interface so that each board supplies its own.
#ifndef TFSCISSOR_{{guard}}_IMAGE_PROVIDER_H_
#define TFSCISSOR_{{guard}}_IMAGE_PROVIDER_H_

#include <cstdint>

// Fills image_data with image_height x image_width x channels int8 values in HWC order, quantised as the
// model's input (see QuantizePixel). Returns false when no image could be taken.
//
// The reference implementation in image_provider.cc needs no hardware: it returns the sample image from
// sample_data.cc. A board port replaces it with one that reads its camera.
bool GetImage(int image_width, int image_height, int channels, int8_t* image_data);

// Maps a camera's 8-bit pixel value (0..255) to the model's int8 input: the model rescales pixels itself, so
// this is the only pre-processing a port needs (usually pixel - 128).
int8_t QuantizePixel(uint8_t pixel);

#endif  // TFSCISSOR_{{guard}}_IMAGE_PROVIDER_H_
