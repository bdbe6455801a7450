// Where MicroPrintf's messages go: the arena line and every error of setup() and loop().
#ifndef TFSCISSOR_{{guard}}_DEBUG_LOG_OUTPUT_H_
#define TFSCISSOR_{{guard}}_DEBUG_LOG_OUTPUT_H_

// TFLM's Cortex-M target (cortex_m_generic) formats each message and hands it to a callback that the application
// registers, and drops it while none is registered. Other TFLM builds (the host's reference tree, ESP-IDF's
// component, Zephyr's module) print through their own DebugLog and have no such function, so it is declared weak:
// where TFLM does not define it, its address is null and nothing is registered.
extern "C" void RegisterDebugLogCallback(void (*callback)(const char* s)) __attribute__((weak));

// Each port's entry point calls this first, with a function that writes a string to the board's output as it is
// (TFLM sends the message, then "\r\n" on its own).
inline void RegisterDebugLogOutput(void (*write)(const char* s)) {
  if (RegisterDebugLogCallback != nullptr) {
    RegisterDebugLogCallback(write);
  }
}

#endif  // TFSCISSOR_{{guard}}_DEBUG_LOG_OUTPUT_H_
