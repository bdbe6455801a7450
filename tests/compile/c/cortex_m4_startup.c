/* The least a Cortex-M4 program needs under qemu-system-arm -M mps2-an386: a vector table, the FPU switched
 * on before any float instruction, .bss zeroed, semihosting for printf, and an exit qemu sees. .data needs
 * no copy: mps2_an386.ld links everything into RAM that qemu loads. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __bss_start__, __bss_end__, __stack_top__;
extern int main(void);
extern void initialise_monitor_handles(void);

void reset_handler(void) {
  volatile uint32_t* cpacr = (uint32_t*)0xE000ED88u;
  *cpacr |= 0xFu << 20; /* CP10 and CP11: full access to the FPU */
  __asm volatile("dsb\n isb");
  for (uint32_t* word = &__bss_start__; word < &__bss_end__; ++word) *word = 0;
  initialise_monitor_handles();
  exit(main());
}

/* newlib's exit() runs the fini arrays through these; there is nothing to add. */
void _init(void) {}
void _fini(void) {}

static void hang(void) {
  for (;;) {
  }
}

__attribute__((section(".vectors"), used)) static const void* const vectors[] = {
    &__stack_top__, (void*)reset_handler, (void*)hang, (void*)hang, (void*)hang, (void*)hang, (void*)hang,
};
