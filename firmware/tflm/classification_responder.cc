// Reference responder with no hardware dependency: prints the result on the standard output.
#include "classification_responder.h"

#include <cstdio>

void RespondToClassification(int category, const char* label, float score, const int8_t* scores, int count) {
  std::printf("class %d (%s) score %.3f scores", category, label, static_cast<double>(score));
  for (int i = 0; i < count; ++i) {
    std::printf(" %d", scores[i]);
  }
  std::printf("\n");
}
