// src/common/check.h: loud, located argument checks (STYLE.md 7).
//
//   SAGEATTN_CHECK(cond, "head_dim mismatch: q=", dq, " k=", dk);
// throws sageattn::Error(kInvalidArgument) with the concatenated message when cond is false.
// SAGEATTN_CHECK_CODE takes the ErrorCode explicitly. Never use assert() on user input.
#pragma once

#include "sageattn/error.h"

#define SAGEATTN_CHECK_CODE(cond, code, ...)                                  \
  do {                                                                        \
    if (!(cond)) throw ::sageattn::Error((code), ::sageattn::detail::concat(__VA_ARGS__)); \
  } while (0)

#define SAGEATTN_CHECK(cond, ...) \
  SAGEATTN_CHECK_CODE(cond, ::sageattn::ErrorCode::kInvalidArgument, __VA_ARGS__)
