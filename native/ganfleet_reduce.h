/*
 * ganfleet_reduce's interface with JavaScript, mirrored value for value by
 * coordinator/reduce-addon.ts: change both together and raise the ABI number in both, so that a
 * .node built from the old interface is refused by the loader instead of misreading its arguments.
 */
#ifndef GANFLEET_REDUCE_H
#define GANFLEET_REDUCE_H

/* REDUCE_ABI in coordinator/reduce-addon.ts. */
#define GANFLEET_REDUCE_ABI 7

/* Wire dtype codes of add and finite: DTYPE_CODE in coordinator/reduce-addon.ts. */
typedef enum { GF_DTYPE_F32 = 0, GF_DTYPE_F16 = 1, GF_DTYPE_BF16 = 2, GF_DTYPE_COUNT } gf_dtype;

/* Indices into adam's constants (one Float64Array): ADAM in coordinator/reduce-addon.ts. */
typedef enum {
  GF_ADAM_DIVISOR = 0,
  GF_ADAM_STEP_SIZE = 1,
  GF_ADAM_BC2_SQRT = 2,
  GF_ADAM_BETA1 = 3,
  GF_ADAM_BETA2 = 4,
  GF_ADAM_C1 = 5,
  GF_ADAM_C2 = 6,
  GF_ADAM_EPS = 7,
  GF_ADAM_LENGTH = 8
} gf_adam_constant;

/* Most shards one add takes: MAX_ADD_SHARDS in coordinator/reduce-addon.ts. */
#define GF_MAX_SHARDS 64

#endif
