/* See crop_policy.h; tfscissor/deploy/crop_policy.py is the reference this must equal. */
/* The window arithmetic must round as numpy's float64 does, one operation at a time: no fused multiply-adds,
 * whatever the build system's flags (a Cortex-M7's double-precision FPU has them). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "crop_policy.h"

#include <math.h>

/* Slack in the comparisons, as in the Python reference: a covering side may fall short by float noise, and a
 * side such as 10 * 1.4 = 14.000000000000002 must not round up to 15 pixels. */
#define TFS_COVER_SLACK 1e-9
#define TFS_PIXEL_SLACK 1e-6

void tfs_dequantize_box(const int8_t raw[4], float scale, int zero_point, float box[4]) {
  for (int i = 0; i < 4; ++i) {
    box[i] = ((float)raw[i] - (float)zero_point) * scale;
  }
}

/* Clamped as a double, then converted: converting a value beyond long's range is undefined behaviour. */
static long clamp_double(double value, long low, long high) {
  return value < (double)low ? low : (value > (double)high ? high : (long)value);
}

int tfs_crop_window(const float box[4], int height, int width, const tfs_crop_policy* policy, tfs_window* window) {
  const double x0 = box[0], y0 = box[1], x1 = box[2], y1 = box[3];
  const int finite = isfinite(x0) && isfinite(y0) && isfinite(x1) && isfinite(y1);
  if (!finite || !(x1 > x0) || !(y1 > y0)) {
    window->x0 = 0;
    window->y0 = 0;
    window->x1 = width;
    window->y1 = height;
    return 1;
  }
  const double centre_x = (x0 + x1) / 2 * width;
  const double centre_y = (y0 + y1) / 2 * height;
  const double box_width = (x1 - x0) * width;
  const double box_height = (y1 - y0) * height;
  double side = (box_width > box_height ? box_width : box_height) * policy->margin;
  const int short_side = height < width ? height : width;
  if (policy->scale_count == 0) {
    side = side < short_side ? side : (double)short_side;
  } else {
    double covering = INFINITY;
    for (int i = 0; i < policy->scale_count; ++i) {
      const double candidate = policy->scales[i] * short_side;
      if (candidate >= side - TFS_COVER_SLACK && candidate < covering) {
        covering = candidate;
      }
    }
    side = isinf(covering) ? (double)short_side : covering;
  }
  const long pixels = clamp_double(ceil(side - TFS_PIXEL_SLACK), 1, short_side);
  window->x0 = (int)clamp_double(floor(centre_x - (double)pixels / 2 + 0.5), 0, width - pixels);
  window->y0 = (int)clamp_double(floor(centre_y - (double)pixels / 2 + 0.5), 0, height - pixels);
  window->x1 = window->x0 + (int)pixels;
  window->y1 = window->y0 + (int)pixels;
  return 0;
}

/* The triangle filter's integer taps for output pixel i of an in_size -> out_size resample, in units of
 * 1 / (2 * out_size) source pixels: tap j weighs max(0, reach - |(2j + 1) out_size - (2i + 1) in_size|). */
typedef struct {
  int first; /* the first source pixel with a non-zero tap */
  int last;  /* the last one */
  long centre;
  long reach;
  long step;
} tfs_taps;

/* The taps before output pixel 0: none yet. */
static tfs_taps taps_start(int in_size, int out_size) {
  tfs_taps taps = {0, 0, 0, 2L * (in_size > out_size ? in_size : out_size), 2L * out_size};
  return taps;
}

/* Moves taps on to output pixel i from pixel i - 1 (or from taps_start for i = 0). Tap j is non-zero where
 * source pixel j's centre, (2j + 1) * out_size, lies strictly inside (centre - reach, centre + reach): first
 * and last follow that interval's ends, which only move forward, so the loops visit no zero taps and no
 * division is needed (two per output pixel were a fifth of the resize's time). The nearest source pixel
 * always lies inside, so the range is never empty. */
static void taps_next(tfs_taps* taps, int i, int in_size) {
  const long half = taps->step / 2;
  taps->centre = (2L * i + 1) * in_size;
  while (taps->first < in_size - 1 && (2L * taps->first + 1) * half <= taps->centre - taps->reach) {
    ++taps->first;
  }
  while (taps->last < in_size - 1 && (2L * taps->last + 3) * half < taps->centre + taps->reach) {
    ++taps->last;
  }
}

static uint32_t tap(const tfs_taps* taps, int j) {
  long distance = (2L * j + 1) * (taps->step / 2) - taps->centre;
  distance = distance < 0 ? -distance : distance;
  return distance < taps->reach ? (uint32_t)(taps->reach - distance) : 0u;
}

static uint64_t tap_sum(const tfs_taps* taps) {
  uint64_t sum = 0;
  for (int j = taps->first; j <= taps->last; ++j) {
    sum += tap(taps, j);
  }
  return sum;
}

int tfs_crop_resize_quantize(const uint8_t* image, int height, int width, int channels, const tfs_window* window,
                             int side, const int8_t table[256], uint32_t* line, int8_t* out) {
  const int crop_width = window->x1 - window->x0;
  const int crop_height = window->y1 - window->y0;
  if (window->x0 < 0 || window->y0 < 0 || window->x1 > width || window->y1 > height || crop_width < 1 ||
      crop_height < 1 || side < 1) {
    return -1;
  }
  const int row_values = crop_width * channels;
  tfs_taps rows = taps_start(crop_height, side);
  for (int i = 0; i < side; ++i) {
    /* Rows first, into one line of 32-bit sums: each at most 255 times the row's tap sum. */
    taps_next(&rows, i, crop_height);
    const uint64_t row_sum = tap_sum(&rows);
    if (row_sum > UINT32_MAX / 255u) {
      return -1;
    }
    for (int v = 0; v < row_values; ++v) {
      line[v] = 0;
    }
    for (int y = rows.first; y <= rows.last; ++y) {
      const uint32_t weight = tap(&rows, y);
      const uint8_t* source = image + ((long)(window->y0 + y) * width + window->x0) * channels;
      for (int v = 0; v < row_values; ++v) {
        line[v] += weight * source[v];
      }
    }
    /* Then columns, in 64 bits, and one rounding: (2 * sum + denominator) / (2 * denominator). */
    tfs_taps cols = taps_start(crop_width, side);
    for (int o = 0; o < side; ++o) {
      taps_next(&cols, o, crop_width);
      const uint64_t denominator = row_sum * tap_sum(&cols);
      if (denominator > UINT64_MAX / 511u) { /* 2 * sum + denominator must not wrap */
        return -1;
      }
      for (int c = 0; c < channels; ++c) {
        uint64_t sum = 0;
        for (int x = cols.first; x <= cols.last; ++x) {
          sum += (uint64_t)tap(&cols, x) * line[x * channels + c];
        }
        const uint64_t pixel = (2 * sum + denominator) / (2 * denominator);
        out[((long)i * side + o) * channels + c] = table[pixel];
      }
    }
  }
  return 0;
}

void tfs_quantize_pixels(const uint8_t* pixels, int count, const int8_t table[256], int8_t* out) {
  for (int i = 0; i < count; ++i) {
    out[i] = table[pixels[i]];
  }
}
