#!/usr/bin/env bash
# tvm2kafka table-topic benchmark: what KAFKA_TABLE_TOPIC costs a run.
#
#   bench/table.sh [--records N] [--parts N] [--rounds N] [--change-every N]
#                  [--partitions N] [--export NAME] [--smoke]
#
#   --records N        records in each export                    (default 1000000)
#   --parts N          gzip part files                           (default 8)
#   --rounds N         rounds of both contenders                 (default 3)
#   --change-every N   the second export changes every N-th device (default 100: 1 %)
#   --partitions N     partitions of the records and table topics (default 6)
#   --export NAME      the export (docs/exports.md; default InfoGatheringExport): e.g.
#                      SoftwareVulnerabilitiesExport, a table by natural key
#   --profile          the table contender of round 1 writes a CPU profile to
#                      .rig/bench/cpu-table-RUN.prof (go tool pprof -top .rig/bench/tvm2kafka FILE)
#   --smoke            20,000 devices, 1 round: proves the benchmark works (CI)
#
# What it does:
#   1. builds .rig/bench/tvm2kafka and .rig/bench/gen; generates two exports of the same
#      devices with internal/synth: A, and B in which every N-th device changed (cached)
#   2. starts Kafka and Azurite when they are not running (and stops what it started),
#      uploads both exports, serves a fake Defender API for each
#   3. a first run on A fills a new table topic (every device "added"; reported apart)
#   4. per round, alternating who goes first, on the export that differs from the table by
#      1/N of its devices (B, then A, then B, …):
#        table      `tvm2kafka run` with KAFKA_TABLE_TOPIC: reads the table back, publishes,
#                   writes the changed devices
#        no-table   `tvm2kafka run` without it
#      each on a fresh records topic, under /usr/bin/time -v; counts are checked
#   5. prints wall time and peak RSS (medians, min–max), the ratio table/no-table, and the
#      table's own figures (read back, update, devices changed)
#
# Environment: BENCH_DIR (default .rig/bench), TVM2KAFKA_RIG_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_TAG=table-bench
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
RIG="${BENCH_DIR:-${TVM2KAFKA_RIG_DIR:-$ROOT/.rig}/bench}"

records=1000000
parts=8
rounds=3
change=100
partitions=6
export=""
profile=0

while [[ $# -gt 0 ]]; do
	case "$1" in
	--records) records="${2:?}"; shift 2 ;;
	--parts) parts="${2:?}"; shift 2 ;;
	--rounds) rounds="${2:?}"; shift 2 ;;
	--change-every) change="${2:?}"; shift 2 ;;
	--partitions) partitions="${2:?}"; shift 2 ;;
	--export) export="${2:?}"; shift 2 ;;
	--profile) profile=1; shift ;;
	--smoke) records=20000; rounds=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done
for v in records parts rounds change partitions; do
	[[ "${!v}" =~ ^[0-9]+$ ]] && ((${!v} >= 1)) || die "--$v must be a number ≥ 1, got '${!v}'"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found (Debian: apt-get install time)"

mkdir -p "$RIG"
RUN="$(date +%Y%m%dT%H%M%S)-$$"
RESULTS="$RIG/table-results-$RUN.tsv"
DATA_A="$RIG/data-r$records-p$parts-s1${export:+-$export}"
DATA_B="$RIG/data-r$records-p$parts-s1${export:+-$export}-c$change"
GEN="$RIG/gen"
TVM="$RIG/tvm2kafka"
TABLE="bench.table.$RUN"

bench_on_exit() {
	[[ -z "${BROKERS:-}" ]] || "$GEN" delete-topic --brokers "$BROKERS" --topic "$TABLE" >/dev/null 2>&1
}
bench_traps
bench_build
"$GEN" gen --records "$records" --parts "$parts" --seed 1 ${export:+--export "$export"} --out "$DATA_A" >&2
"$GEN" gen --records "$records" --parts "$parts" --seed 1 ${export:+--export "$export"} --change-every "$change" --out "$DATA_B" >&2

bench_services
serve_export "$DATA_A"
URL_A="$URL"
serve_export "$DATA_B"
URL_B="$URL"

cpusec() { awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$1"; }
field() { grep "\"$2\"" "$1" | tail -n1 | sed -n "s/.*\"$3\":\([0-9.]*\).*/\1/p"; }

# contender NAME ROUND URL [TABLE]: one run on a fresh records topic.
contender() {
	local name=$1 round=$2 url=$3 table=${4:-} topic="bench.$1.$RUN.$2" tf lf t0 t1 got
	tf="$RIG/time-table-$name-$RUN-$round.txt"
	lf="$RIG/table-$name-$RUN-$round.log"
	"$GEN" create-topic --brokers "$BROKERS" --topic "$topic" --partitions "$partitions" >/dev/null
	t0="$(now)"
	/usr/bin/time -v -o "$tf" env -u AZURE_CLIENT_SECRET KAFKA_BROKERS="$BROKERS" KAFKA_TOPIC="$topic" \
		KAFKA_TABLE_TOPIC="$table" KAFKA_TOPIC_PARTITIONS="$partitions" MDE_API_URL="$url" MDE_ACCESS_TOKEN=bench \
		MDE_EXPORT="${export:-InfoGatheringExport}" \
		TVM2KAFKA_CPU_PROFILE="$( ((profile)) && [[ "$name" == table && "$round" == 1 ]] && echo "$RIG/cpu-table-$RUN.prof")" \
		LOG_LEVEL=info LOG_FORMAT=json "$TVM" run >"$lf" 2>&1 ||
		{ tail -n 20 "$lf" >&2; die "$name run failed (log: $lf)"; }
	t1="$(now)"
	got="$("$GEN" count --brokers "$BROKERS" --topic "$topic")"
	[[ "$got" == $((records + 2 * partitions)) ]] || die "topic $topic holds $got messages"
	"$GEN" delete-topic --brokers "$BROKERS" --topic "$topic" >/dev/null
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$round" "$(elapsed "$t0" "$t1")" "$(maxrss "$tf")" \
		"$(field "$lf" "table topic read" duration)" "$(field "$lf" "table topic updated" duration)" \
		"$(field "$lf" "table topic updated" changed)" "$(field "$lf" "table topic read" devices)" "$(cpusec "$tf")" \
		"$(field "$lf" "snapshot summary" mb_per_s)" "$(field "$lf" "snapshot summary" records_per_s)" >>"$RESULTS"
	log "round $round $name: $(elapsed "$t0" "$t1") s, $(cpusec "$tf") s CPU, peak RSS $(($(maxrss "$tf") / 1024)) MB"
}

printf '# contender\tround\twall_s\tmax_rss_kb\ttable_read_s\ttable_update_s\tchanged\ttable_devices\tcpu_s\tmb_per_s\trecords_per_s\n' >"$RESULTS"
log "first run: fills table topic $TABLE with $records devices"
contender first 0 "$URL_A" "$TABLE"
for ((r = 1; r <= rounds; r++)); do
	url="$URL_B"
	((r % 2)) || url="$URL_A" # B differs from A's table, A from B's
	if ((r % 2)); then
		contender table "$r" "$url" "$TABLE"; contender no-table "$r" "$url"
	else
		contender no-table "$r" "$url"; contender table "$r" "$url" "$TABLE"
	fi
done

awk -F'\t' -v records="$records" -v change="$change" -v partitions="$partitions" '
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
/^#/ { next }
$1 == "first" { fw = $3; fr = $4; next }
{ n[$1]++; w[$1, n[$1]] = $3; r[$1, n[$1]] = $4; u[$1, n[$1]] = $9; mbs[$1, n[$1]] = $10; rps[$1, n[$1]] = $11; if ($1 == "table") { tr[n[$1]] = $5; tu[n[$1]] = $6; ch[n[$1]] = $7; dev = $8 } }
END {
	for (i = 1; i <= n["table"]; i++) { x[i] = w["table", i]; y[i] = r["table", i]; z[i] = u["table", i]; q[i] = w["table", i] / w["no-table", i]; a[i] = tr[i]; b[i] = tu[i] }
	mt = median(x, n["table"]); rt = median(y, n["table"]); ut = median(z, n["table"]); mq = median(q, n["table"]); ma = median(a, n["table"]); mb = median(b, n["table"])
	split("", x); split("", y); split("", z)
	for (i = 1; i <= n["no-table"]; i++) { x[i] = w["no-table", i]; y[i] = r["no-table", i]; z[i] = u["no-table", i] }
	mn = median(x, n["no-table"]); rn = median(y, n["no-table"]); un = median(z, n["no-table"])
	split("", x)
	for (i = 1; i <= n["table"]; i++) x[i] = w["table", i]
	lo = x[1]; hi = x[1]; for (i = 1; i <= n["table"]; i++) { if (x[i] < lo) lo = x[i]; if (x[i] > hi) hi = x[i] }
	split("", y)
	for (i = 1; i <= n["no-table"]; i++) y[i] = w["no-table", i]
	nlo = y[1]; nhi = y[1]; for (i = 1; i <= n["no-table"]; i++) { if (y[i] < nlo) nlo = y[i]; if (y[i] > nhi) nhi = y[i] }
	printf "table-topic benchmark: %d records, every %d-th changed per run, %d partitions, %d round(s)\n", records, change, partitions, n["table"]
	printf "%-10s %18s %8s %12s\n", "contender", "wall s (min-max)", "CPU s", "peak RSS MB"
	printf "%-10s %6.2f (%.2f-%.2f) %8.2f %12.0f\n", "table", mt, lo, hi, ut, rt / 1024
	printf "%-10s %6.2f (%.2f-%.2f) %8.2f %12.0f\n", "no-table", mn, nlo, nhi, un, rn / 1024
	printf "ratio table/no-table: wall %.2f (median of medians), %.2f (median of per-round ratios); CPU %.2f\n", mt / mn, mq, ut / un
	printf "table per run: %d rows read back in %.2f s, %s changed, update after the end markers %.2f s\n", dev, ma, ch[1], mb
	split("", x); for (i = 1; i <= n["no-table"]; i++) x[i] = mbs["no-table", i]; mm = median(x, n["no-table"])
	split("", x); for (i = 1; i <= n["no-table"]; i++) x[i] = rps["no-table", i]; mr = median(x, n["no-table"])
	printf "no-table (records mode): %.0f records/s, %.1f MB/s (decompressed lines, median)\n", mr, mm
	printf "first run (empty table, every row added): %.2f s, peak RSS %.0f MB\n", fw, fr / 1024
}' "$RESULTS" | tee "$RIG/table-report-$RUN.txt"
log "results: $RESULTS"
