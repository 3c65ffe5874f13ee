/*
 * ganfleet_blas's interface with JavaScript, mirrored value for value by
 * worker/kernels/native-gemm.ts: change both together and raise the ABI number in both, so that a
 * .node built from the old interface is refused by the loader instead of misreading its arguments.
 */
#ifndef GANFLEET_BLAS_H
#define GANFLEET_BLAS_H

/* BLAS_ABI in worker/kernels/native-gemm.ts. */
#define GANFLEET_BLAS_ABI 3

/* gemm's fused activations: ACTIVATION in worker/kernels/native-gemm.ts. */
typedef enum {
  GF_ACT_LINEAR = 0,
  GF_ACT_RELU = 1,
  GF_ACT_LEAKYRELU = 2,
  GF_ACT_RELU6 = 3,
  GF_ACT_SIGMOID = 4,
  GF_ACT_ELU = 5,
  GF_ACT_TANH = 6,
  GF_ACT_COUNT
} gf_activation;

#endif
