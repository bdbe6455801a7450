// Arduino sketch for {{name}} on the {{board_title}}. setup() and loop() are the project's own
// (main_functions.cpp) and Arduino's core calls them; this file only names the TFLM library, so that
// arduino-cli puts it on every source's include path. The other files are copies of the project's root
// sources (.cc renamed .cpp): Arduino builds only what is inside the sketch folder.
#include <{{arduino_library_header}}>

#include "main_functions.h"
