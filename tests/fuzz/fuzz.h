/*
 * fuzz: the libFuzzer entry points every tests/fuzz/fuzz_*.c defines, so the
 * same target links with libFuzzer (make fuzz) or with replay_main.c (make test).
 */
#ifndef SMC_TESTS_FUZZ_H
#define SMC_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional: a target may define it for one-time setup. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

#endif
