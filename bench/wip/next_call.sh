#!/usr/bin/env bash
# The next session's first device call (bench/NOTES.md Next, twenty-third session), one call
# instead of three because device starts are the scarce part. Run from the repository root with
# timeout_s 600. In order, each only if the call has time left for it:
#   section 30's two-warpgroup A/B   bench/wip/two_wg.sh        (~260 s)
#   section 31's causal order A/B    bench/wip/causal_order.sh  (~120 s, if <= 400 s so far)
#   section 29's quantizer A/B     bench/wip/evict_last.sh    (~180 s, if <= 420 s so far)
# A part that does not run here is the next call's. Each part's full output goes to $OUT/NAME.out
# and its logs into $OUT/logs.tgz (the device tool returns few files and the last 12,000
# characters of output); the console gets a compact summary at the end: tests, spills of the sm90
# kernels, and per bench row the label, cos, e2e TFLOPS, kernel TFLOPS and quant ms.
set -uo pipefail
out="${OUT:-/tmp/next_call_out}"
mkdir -p "$out"
parts=()
part() {  # part NAME LATEST_START: runs bench/wip/NAME.sh into $out/NAME if SECONDS <= LATEST_START
  if [ "$SECONDS" -le "$2" ]; then
    mkdir -p "$out/$1"
    echo "== $1 (from $SECONDS s)" | tee "$out/$1.out"
    OUT="$out/$1" timeout $((590 - SECONDS)) bash "bench/wip/$1.sh" >>"$out/$1.out" 2>&1
    echo "== $1 rc $? at $SECONDS s" | tee -a "$out/$1.out"
    parts+=("$1")
  else
    echo "== $1 skipped at $SECONDS s (not enough time left in this call)"
  fi
}
part two_wg 0
part causal_order 400
part evict_last 420
(cd "$out" && tar czf logs.tgz "${parts[@]}" && rm -rf "${parts[@]}")
for p in "${parts[@]}"; do
  echo "==== $p"
  awk '
    /^(fp8|fp16) / { next }                     # raw bench rows (ab_probe prints them labelled)
    / (fp8|fp16) +[0-9.]+ +[0-9.]+ / && NF >= 11 {  # a labelled bench row: keep the key columns
      label = ""; for (i = 1; i <= NF - 10; ++i) label = label $i " "
      printf "%s cos %s e2e %s kernel %s quant %s\n", label, $(NF - 9), $(NF - 4), $(NF - 2), $(NF - 1); next
    }
    /spill/ && /sm80/ { next }
    /rc=|PASSED|FAILED|spill|^ncu |Stall|No Eligible|Issue Slots|Warp Cycles|^== |NVIDIA/ { print substr($0, 1, 200) }
  ' "$out/$p.out"
done
echo "== $SECONDS s"
