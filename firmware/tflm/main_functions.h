// The application's two entry points, as in TFLM's examples (and Arduino sketches).
#ifndef TFSCISSOR_{{guard}}_MAIN_FUNCTIONS_H_
#define TFSCISSOR_{{guard}}_MAIN_FUNCTIONS_H_

#ifdef __cplusplus
extern "C" {
#endif

// Loads the model, registers its ops and allocates the tensor arena. Call once.
void setup();

// Takes one image, runs the model on it and reports the class. Call repeatedly.
void loop();

#ifdef __cplusplus
}
#endif

#endif  // TFSCISSOR_{{guard}}_MAIN_FUNCTIONS_H_
