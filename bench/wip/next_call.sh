#!/usr/bin/env bash
# The next session's first device call (bench/NOTES.md Next, twenty-third session): section 30's
# two-warpgroup A/B (bench/wip/two_wg.sh, ~300 s), then, if at least 170 s of a 600 s call are
# left, section 29's evict-last A/B (bench/wip/evict_last.sh, ~150 s). One call instead of two:
# device starts are the scarce part. Run from the repository root with timeout_s 600.
set -uo pipefail
out="${OUT:-/tmp/next_call_out}"
mkdir -p "$out/two_wg" "$out/evict_last"
OUT="$out/two_wg" bash bench/wip/two_wg.sh
echo "== two_wg done at $SECONDS s"
if [ "$SECONDS" -le 430 ]; then
  OUT="$out/evict_last" timeout $((590 - SECONDS)) bash bench/wip/evict_last.sh
else
  echo "== evict_last skipped (not enough time left in this call)"
fi
echo "== $SECONDS s"
