/* The crop policy of tfscissor's two-stage pipeline in plain C: from the cropper's int8 box to the
 * classifier's int8 input. It reproduces tfscissor.deploy.crop_policy bit for bit, so the firmware classifies the
 * same crops as the Python evaluation:
 *   1. the box, dequantised as float (the cropper's output scale and zero point);
 *   2. the window: the box in pixels, times the margin, squared to its longer side, grown to the smallest
 *      regulated side (a fraction of the image's short side) that covers it, rounded up to whole pixels,
 *      centred (rounding half up) and shifted inside the image; a box with no area or not finite is the
 *      whole image (a fallback);
 *   3. the crop resized to the classifier's side with a triangle filter in integer taps (bilinear when
 *      enlarging, area-like when shrinking): each pixel is an exact fraction of integer sums, rounded half up;
 *   4. each uint8 pixel mapped to int8 through the classifier's quantisation table.
 * Step 2 is a few double operations in the same order as numpy's float64; crop_policy.c turns off their
 * contraction into fused multiply-adds itself (GCC and clang pragmas), so any build system's flags will do. */
#ifndef TFSCISSOR_CROP_POLICY_H_
#define TFSCISSOR_CROP_POLICY_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A pixel window [x0, x1) x [y0, y1). */
typedef struct {
  int x0;
  int y0;
  int x1;
  int y1;
} tfs_window;

typedef struct {
  /* Regulated crop sides as fractions of the image's short side, ascending, each in (0, 1]; with
   * scale_count 0 the squared box is only capped at the short side. */
  const double* scales;
  int scale_count;
  double margin; /* each side of the box is multiplied by this about its centre */
} tfs_crop_policy;

/* The cropper's int8 outputs (xmin, ymin, xmax, ymax) as a normalised float box. */
void tfs_dequantize_box(const int8_t raw[4], float scale, int zero_point, float box[4]);

/* The window for a normalised box on a height x width image. Returns 1 when the box is degenerate and the
 * window is the whole image, 0 otherwise. */
int tfs_crop_window(const float box[4], int height, int width, const tfs_crop_policy* policy, tfs_window* window);

/* Crops window from an HWC uint8 image, resizes it to side x side and quantises it through table (the
 * classifier's int8 value of each pixel value 0..255) into out (side * side * channels values). line is
 * scratch for (window->x1 - window->x0) * channels values. Returns 0, or -1 when the window does not lie in
 * the image or is so much larger than side that a row's sums could overflow 32 bits. */
int tfs_crop_resize_quantize(const uint8_t* image, int height, int width, int channels, const tfs_window* window,
                             int side, const int8_t table[256], uint32_t* line, int8_t* out);

/* Quantises count uint8 pixels through table: the cropper's input is the whole image as it is. */
void tfs_quantize_pixels(const uint8_t* pixels, int count, const int8_t table[256], int8_t* out);

#ifdef __cplusplus
}
#endif

#endif /* TFSCISSOR_CROP_POLICY_H_ */
