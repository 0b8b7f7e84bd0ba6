#!/usr/bin/env bash
# The next session's first device call (bench/NOTES.md Next, twenty-third session), one call
# instead of three because device starts are the scarce part. Run from the repository root with
# timeout_s 600. In order, each only if the call has time left for it:
#   section 30's two-warpgroup A/B   bench/wip/two_wg.sh        (~260 s)
#   section 31's causal order A/B    bench/wip/causal_order.sh  (~120 s, if <= 400 s so far)
#   section 29's evict-last A/B      bench/wip/evict_last.sh    (~120 s, if <= 440 s so far)
# A part that does not run here is the next call's.
set -uo pipefail
out="${OUT:-/tmp/next_call_out}"
part() {  # part NAME LATEST_START: runs bench/wip/NAME.sh into $out/NAME if SECONDS <= LATEST_START
  if [ "$SECONDS" -le "$2" ]; then
    mkdir -p "$out/$1"
    echo "== $1 (from $SECONDS s)"
    OUT="$out/$1" timeout $((590 - SECONDS)) bash "bench/wip/$1.sh"
  else
    echo "== $1 skipped at $SECONDS s (not enough time left in this call)"
  fi
}
part two_wg 0
part causal_order 400
part evict_last 440
echo "== $SECONDS s"
