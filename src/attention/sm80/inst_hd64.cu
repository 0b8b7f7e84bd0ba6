// src/attention/sm80/inst_hd64.cu: sm80 attention kernels for head dims up to 64 (all P·V modes).
#include "attention/sm80/launch_kernel.cuh"

SAGEATTN_SM80_INSTANTIATE(64);
