// Runs setup() once and loop() forever, as TFLM's examples do. On a host, `./{{name}} N` stops after N loops.
#include <cstdio>
#include <cstdlib>

#include "debug_log_output.h"
#include "main_functions.h"

namespace {
// Flushed at once: on a board, newlib buffers a stdout that is not a terminal a kilobyte at a time, so the
// board's _write would see the messages late.
void WriteDebugLog(const char* s) {
  std::fputs(s, stdout);
  std::fflush(stdout);
}
}  // namespace

int main(int argc, char* argv[]) {
  RegisterDebugLogOutput(WriteDebugLog);
  setup();
  const long count = argc > 1 ? std::strtol(argv[1], nullptr, 10) : -1;
  for (long i = 0; count < 0 || i < count; ++i) {
    loop();
  }
  return 0;
}
