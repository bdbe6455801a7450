// ESP-IDF entry point: setup() once, then loop() forever, like the host's main.cc.
#include <cstdio>

#include "debug_log_output.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "main_functions.h"

namespace {
// The console UART, like printf; TFLM's "\r\n" after each message flushes the line.
void WriteDebugLog(const char* s) { std::fputs(s, stdout); }
}  // namespace

extern "C" void app_main(void) {
  RegisterDebugLogOutput(WriteDebugLog);
  setup();
  while (true) {
    loop();
    // One tick for the idle task, which feeds the task watchdog; a loop that never blocks trips it.
    vTaskDelay(1);
  }
}
