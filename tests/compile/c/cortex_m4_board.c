/* What a bare-metal board gives the generated cmake/ port, here for qemu-system-arm -M mps2-an386 with
 * mps2_an386.ld: a vector table, a reset handler (FPU on, .bss zeroed, static constructors run), and the system
 * calls newlib-nano leaves to the board: _write, sending bytes out (semihosting here, a UART on a real board),
 * and _exit, which ends qemu. .data needs no copy: mps2_an386.ld links everything into RAM that qemu loads. */
#include <stdint.h>

extern uint32_t __bss_start__, __bss_end__, __stack_top__;
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);
extern int main(void);

/* Arm semihosting: the operation in r0, its argument in r1, the result in r0. */
static int semihost(int operation, const void* argument) {
  register int r0 __asm__("r0") = operation;
  register const void* r1 __asm__("r1") = argument;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

int _write(int file, const char* data, int length) {
  (void)file;
  for (int i = 0; i < length; ++i) semihost(0x03, &data[i]); /* SYS_WRITEC */
  return length;
}

void _exit(int status) {
  (void)status;
  semihost(0x18, (const void*)0x20026); /* SYS_EXIT, ADP_Stopped_ApplicationExit */
  for (;;) {
  }
}

void reset_handler(void) {
  volatile uint32_t* cpacr = (uint32_t*)0xE000ED88u;
  *cpacr |= 0xFu << 20; /* CP10 and CP11: full access to the FPU */
  __asm__ volatile("dsb\n isb");
  for (uint32_t* word = &__bss_start__; word < &__bss_end__; ++word) *word = 0;
  for (void (**constructor)(void) = __init_array_start; constructor < __init_array_end; ++constructor) (*constructor)();
  _exit(main());
}

static void hang(void) {
  for (;;) {
  }
}

__attribute__((section(".vectors"), used)) static const void* const vectors[] = {
    &__stack_top__, (void*)reset_handler, (void*)hang, (void*)hang, (void*)hang, (void*)hang, (void*)hang,
};
