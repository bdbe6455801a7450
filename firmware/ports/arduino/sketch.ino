// Arduino sketch for {{name}} on the {{board_title}}. setup() and loop() are the project's own
// (main_functions.cpp) and Arduino's core calls them; this file names the TFLM library, so that arduino-cli
// puts it on every source's include path, and sends MicroPrintf's messages to Serial. The other files are
// copies of the project's root sources (.cc renamed .cpp): Arduino builds only what is inside the sketch folder.
#include <{{arduino_library_header}}>

#include "debug_log_output.h"
#include "main_functions.h"

namespace {
void WriteDebugLog(const char* s) { Serial.print(s); }

// The core's main() calls setup() itself, so the output is registered here, while static objects are
// constructed, before setup() runs.
struct DebugLogRegistration {
  DebugLogRegistration() { RegisterDebugLogOutput(WriteDebugLog); }
} debug_log_registration;
}  // namespace
