// ESP-IDF entry point: setup() once, then loop() forever, like the host's main.cc.
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "main_functions.h"

extern "C" void app_main(void) {
  setup();
  while (true) {
    loop();
    // One tick for the idle task, which feeds the task watchdog; a loop that never blocks trips it.
    vTaskDelay(1);
  }
}
