// Zephyr entry point: setup() once, then loop() forever, like the host's main.cc.
#include <zephyr/sys/printk.h>

#include "debug_log_output.h"
#include "main_functions.h"

namespace {
// The console, unbuffered.
void WriteDebugLog(const char* s) { printk("%s", s); }
}  // namespace

int main(void) {
  RegisterDebugLogOutput(WriteDebugLog);
  setup();
  while (true) {
    loop();
  }
  return 0;
}
