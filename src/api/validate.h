// src/api/validate.h: argument validation for every entry point, once, for all backends.
//
// Each function checks every rule of DESIGN.md §1 that the arguments can break and throws
// sageattn::Error naming the bad value; on success it returns fully resolved Params (scale,
// PV mode and backend chosen). It never writes to any tensor.
#pragma once

#include "api/params.h"
#include "sageattn/attention.h"

namespace sageattn::detail {

AttentionParams make_dense_params(const TensorView& q, const TensorView& k, const TensorView& v,
                                  const TensorView& out, const TensorView& lse,
                                  const AttentionOptions& options);

AttentionParams make_varlen_params(const VarlenArgs& args, const AttentionOptions& options);

}  // namespace sageattn::detail
