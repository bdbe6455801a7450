// Reference responder with no hardware dependency: prints the result on the standard output.
#include "classification_responder.h"

#include <cstdio>
#include <cstdlib>

void RespondToClassification(int category, const char* label, float score, const int8_t* scores, int count) {
  // The score in thousandths, printed as integers: newlib-nano, the C library of most bare-metal builds, prints
  // nothing for %f unless linked with -u _printf_float, which adds its float formatting to the firmware.
  const float thousandths = score * 1000.0f;
  const long rounded = static_cast<long>(thousandths < 0.0f ? thousandths - 0.5f : thousandths + 0.5f);
  std::printf("class %d (%s) score %s%ld.%03ld scores", category, label, rounded < 0 ? "-" : "",
              std::labs(rounded) / 1000, std::labs(rounded) % 1000);
  for (int i = 0; i < count; ++i) {
    std::printf(" %d", scores[i]);
  }
  std::printf("\n");
  // A board's _write gets the line now rather than when newlib's buffer fills.
  std::fflush(stdout);
}
