// Bare-metal entry point, called by the board's start-up code: setup() once, then loop() forever.
#include "main_functions.h"

int main() {
  setup();
  while (true) {
    loop();
  }
}
