// src/attention/sm90/inst_hd64.cu: sm90 attention kernels for head dims up to 64 (fp16 and fp8 P·V).
#include "attention/sm90/launch_kernel.cuh"

SAGEATTN_SM90_INSTANTIATE(64);
