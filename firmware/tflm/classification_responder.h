// What to do with a result, behind a small interface so that each board supplies its own.
#ifndef TFSCISSOR_{{guard}}_CLASSIFICATION_RESPONDER_H_
#define TFSCISSOR_{{guard}}_CLASSIFICATION_RESPONDER_H_

#include <cstdint>

// Called after each inference with the winning category, its label, its dequantised score (a probability
// when the model ends in softmax) and all `count` raw int8 scores. The reference implementation prints; a
// board port would light an LED, update a display or send a message instead.
void RespondToClassification(int category, const char* label, float score, const int8_t* scores, int count);

#endif  // TFSCISSOR_{{guard}}_CLASSIFICATION_RESPONDER_H_
