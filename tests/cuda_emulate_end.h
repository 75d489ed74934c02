// After a test file's `#define DYNARCH_CUDA_EMULATE 1` and its #include of .cu
// files: the emulation's blockIdx / threadIdx / blockDim / gridDim macros
// (kernels/cuda/grid.cuh) end here, so the test code below may use those names
// freely. No include guard: each emulated test file ends its kernels once.
#undef blockIdx
#undef threadIdx
#undef blockDim
#undef gridDim
