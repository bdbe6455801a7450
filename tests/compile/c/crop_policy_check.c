/* Runs firmware/tflm/two_stage/crop_policy.c on the cases of check_data.h (written by
 * tests/compile/test_crop_policy_c.py) and prints each window and int8 tensor, for the test to compare with
 * the Python pipeline. The same file runs on the host and, under qemu, on a Cortex-M4. */
#include <math.h>
#include <stdio.h>

#include "check_data.h"
#include "crop_policy.h"

static uint32_t line[CHECK_WIDTH * CHECK_CHANNELS];
static int8_t tensor[CHECK_SIDE * CHECK_SIDE * CHECK_CHANNELS];

int main(void) {
  for (int n = 0; n < CHECK_CASES; ++n) {
    const int p = check_policy[n];
    const tfs_crop_policy policy = {check_scales[p], check_scale_counts[p], check_margins[p]};
    float box[4];
    if (n < CHECK_RAW_CASES) {
      tfs_dequantize_box(check_raw[n], CHECK_BOX_SCALE, CHECK_BOX_ZERO_POINT, box);
    } else { /* a float box, as a float cropper would give: the edges int8 cannot reach */
      for (int i = 0; i < 4; ++i) box[i] = check_float_boxes[n - CHECK_RAW_CASES][i];
    }
    tfs_window window;
    const int fallback = tfs_crop_window(box, CHECK_HEIGHT, CHECK_WIDTH, &policy, &window);
    const int status = tfs_crop_resize_quantize(check_images[check_image[n]], CHECK_HEIGHT, CHECK_WIDTH,
                                                CHECK_CHANNELS, &window, CHECK_SIDE, check_table, line, tensor);
    printf("case %d window %d %d %d %d fallback %d status %d\n", n, window.x0, window.y0, window.x1, window.y1,
           fallback, status);
    for (int i = 0; i < CHECK_SIDE * CHECK_SIDE * CHECK_CHANNELS; ++i) printf("%02x", (uint8_t)tensor[i]);
    printf("\n");
  }
  printf("done %d cases\n", CHECK_CASES);
  return 0;
}
