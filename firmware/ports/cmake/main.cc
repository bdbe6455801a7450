// Bare-metal entry point, called by the board's start-up code: setup() once, then loop() forever.
#include <cstdio>

#include "debug_log_output.h"
#include "main_functions.h"

namespace {
// MicroPrintf's messages go to stdout, which newlib hands to the board's _write (a UART, semihosting). Flushed
// at once, because newlib buffers a stdout that is not a terminal a kilobyte at a time.
void WriteDebugLog(const char* s) {
  std::fputs(s, stdout);
  std::fflush(stdout);
}
}  // namespace

int main() {
  RegisterDebugLogOutput(WriteDebugLog);
  setup();
  while (true) {
    loop();
  }
}
