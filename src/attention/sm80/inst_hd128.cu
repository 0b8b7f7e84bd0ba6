// src/attention/sm80/inst_hd128.cu: sm80 attention kernels for head dims up to 128 (all P·V modes).
#include "attention/sm80/launch_kernel.cuh"

SAGEATTN_SM80_INSTANTIATE(128);
