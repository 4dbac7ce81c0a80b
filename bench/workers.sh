#!/usr/bin/env bash
# Peak RSS of `tvm2kafka run` by TVM2KAFKA_WORKERS: the figures behind the
# automatic worker default (README, "Memory and workers").
#
#   bench/workers.sh [--records N] [--parts N] [WORKERS...]
#
#   --records N   devices in the synthetic snapshot (default 1000000)
#   --parts N     gzip part files (default 32: every worker count up to 32 has parts to work on)
#   WORKERS       worker counts to measure (default: 1 2 4 8 16 32)
#
# Each count is one round of bench/run.sh --workers N (same data, same broker); the
# table shows the peak RSS (/usr/bin/time) of the publishing run and of the dry run,
# and the growth per worker against the smallest count.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RIG="${BENCH_DIR:-${TVM2KAFKA_RIG_DIR:-$ROOT/.rig}/bench}"
records=1000000
parts=32
counts=()
while [[ $# -gt 0 ]]; do
	case "$1" in
	--records) records="${2:?}"; shift 2 ;;
	--parts) parts="${2:?}"; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) counts+=("$1"); shift ;;
	esac
done
((${#counts[@]})) || counts=(1 2 4 8 16 32)

rows=()
for w in "${counts[@]}"; do
	"$ROOT/bench/run.sh" --records "$records" --parts "$parts" --rounds 1 --workers "$w" >&2
	res="$(ls -t "$RIG"/results-*.tsv | head -n1)"
	rows+=("$(awk -F'\t' -v w="$w" '
		$1 == "tvm2kafka" { rss = $4 / 1024; wall = $3 }
		$1 == "dry-run"   { dry = $4 / 1024 }
		END { printf "%d\t%.0f\t%.0f\t%.2f", w, rss, dry, wall }' "$res")")
done

printf '\n%d records in %d parts; peak RSS in MB (/usr/bin/time -v)\n' "$records" "$parts"
printf '%s\n' "${rows[@]}" | awk -F'\t' '
	BEGIN { printf "%-8s %10s %10s %8s %14s\n", "workers", "run MB", "dry-run MB", "wall s", "MB/worker" }
	NR == 1 { w0 = $1; r0 = $2 }
	{ per = ($1 > w0) ? sprintf("%.1f", ($2 - r0) / ($1 - w0)) : "-"
	  printf "%-8d %10d %10d %8.2f %14s\n", $1, $2, $3, $4, per }'
