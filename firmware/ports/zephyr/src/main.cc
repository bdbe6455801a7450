// Zephyr entry point: setup() once, then loop() forever, like the host's main.cc.
#include "main_functions.h"

int main(void) {
  setup();
  while (true) {
    loop();
  }
  return 0;
}
