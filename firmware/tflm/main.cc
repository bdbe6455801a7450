// Runs setup() once and loop() forever, as TFLM's examples do. On a host, `./{{name}} N` stops after N loops.
#include <cstdlib>

#include "main_functions.h"

int main(int argc, char* argv[]) {
  setup();
  const long count = argc > 1 ? std::strtol(argv[1], nullptr, 10) : -1;
  for (long i = 0; count < 0 || i < count; ++i) {
    loop();
  }
  return 0;
}
