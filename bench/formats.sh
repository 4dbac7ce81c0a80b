#!/usr/bin/env bash
# Value-format benchmark (README "Typed topics"): `tvm2kafka run` of the same synthetic
# InfoGathering export with KAFKA_VALUE_FORMAT=raw, json, avro and json-schema, on the rig's
# Kafka broker, the typed formats registering their schema in the rig's Apicurio Registry
# (scripts/registry.sh). Rounds alternate the order of the formats.
#
#   bench/formats.sh [--records N] [--parts N] [--rounds N] [--partitions N] [--smoke]
#
# Prints per format the median wall time (min-max), CPU seconds, peak RSS and the ratio of
# its wall time to raw's in the same round (median of the rounds). Targets: json and avro
# at most 1.5x raw's time, peak RSS at most 96 MB. Results are kept in .rig/bench/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_TAG=formats-bench
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
RIG="${BENCH_DIR:-${TVM2KAFKA_RIG_DIR:-$ROOT/.rig}/bench}"

records=1000000
parts=8
rounds=5
partitions=6
formats=(raw json avro json-schema)

while [[ $# -gt 0 ]]; do
	case "$1" in
	--records) records="${2:?}"; shift 2 ;;
	--parts) parts="${2:?}"; shift 2 ;;
	--rounds) rounds="${2:?}"; shift 2 ;;
	--partitions) partitions="${2:?}"; shift 2 ;;
	--smoke) records=20000; rounds=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done
for v in records parts rounds partitions; do
	[[ "${!v}" =~ ^[0-9]+$ ]] && ((${!v} >= 1)) || die "--$v must be a number ≥ 1, got '${!v}'"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found (Debian: apt-get install time)"

mkdir -p "$RIG"
RUN="$(date +%Y%m%dT%H%M%S)-$$"
RESULTS="$RIG/formats-results-$RUN.tsv"
DATA="$RIG/data-r$records-p$parts-s1"
GEN="$RIG/gen"
TVM="$RIG/tvm2kafka"

bench_traps
bench_build
"$GEN" gen --records "$records" --parts "$parts" --seed 1 --out "$DATA" >&2
bench_services
start_service registry || die "the Schema Registry did not start"
eval "$("$ROOT/scripts/registry.sh" env)"
serve_export "$DATA"

cpusec() { awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$1"; }

contender() { # format round
	local topic="bench.format.$RUN.$2.$1" tf="$RIG/time-format-$1-$RUN-$2.txt" lf="$RIG/format-$1-$RUN-$2.log" t0 t1 got
	"$GEN" create-topic --brokers "$BROKERS" --topic "$topic" --partitions "$partitions" >/dev/null
	t0="$(now)"
	/usr/bin/time -v -o "$tf" env -u AZURE_CLIENT_SECRET KAFKA_BROKERS="$BROKERS" KAFKA_TOPIC="$topic" \
		MDE_API_URL="$URL" MDE_ACCESS_TOKEN=bench KAFKA_VALUE_FORMAT="$1" KAFKA_SCHEMA_REGISTRY_URL="$IT_SCHEMA_REGISTRY_URL" \
		LOG_LEVEL=info LOG_FORMAT=json "$TVM" run >"$lf" 2>&1 ||
		{ tail -n 20 "$lf" >&2; die "$1 run failed (log: $lf)"; }
	t1="$(now)"
	got="$("$GEN" count --brokers "$BROKERS" --topic "$topic")"
	[[ "$got" == $((records + 2 * partitions)) ]] || die "topic $topic holds $got messages"
	"$GEN" delete-topic --brokers "$BROKERS" --topic "$topic" >/dev/null
	printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$(elapsed "$t0" "$t1")" "$(maxrss "$tf")" "$(cpusec "$tf")" >>"$RESULTS"
	log "round $2 $1: $(elapsed "$t0" "$t1") s, $(cpusec "$tf") s CPU, peak RSS $(($(maxrss "$tf") / 1024)) MB"
}

printf '# format\tround\twall_s\tmax_rss_kb\tcpu_s\n' >"$RESULTS"
log "$rounds round(s) of $records InfoGathering records in $parts parts, $partitions partitions"
for ((r = 1; r <= rounds; r++)); do
	n=${#formats[@]}
	for ((i = 0; i < n; i++)); do
		contender "${formats[$(((i + r - 1) % n))]}" "$r" # each round starts with the next format
	done
done

awk -F'\t' -v records="$records" '
function median(a, k,   i, j, t) {
	for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return k % 2 ? a[(k+1)/2] : (a[k/2] + a[k/2+1]) / 2
}
/^#/ { next }
{ n[$1]++; w[$1, n[$1]] = $3; m[$1, n[$1]] = $4; c[$1, n[$1]] = $5; byRound[$1, $2] = $3; rounds[$2] = 1 }
END {
	printf "value-format benchmark: %d InfoGathering records, %d round(s)\n", records, n["raw"]
	printf "%-12s %20s %8s %12s %14s\n", "format", "wall s (min-max)", "CPU s", "peak RSS MB", "time / raw"
	split("raw json avro json-schema", order, " ")
	for (o = 1; o <= 4; o++) {
		f = order[o]; k = n[f]
		split("", x); split("", y); split("", z); split("", q)
		lo = 1e9; hi = 0; hr = 0
		for (i = 1; i <= k; i++) { x[i] = w[f, i]; y[i] = c[f, i]; if (w[f, i] < lo) lo = w[f, i]; if (w[f, i] > hi) hi = w[f, i]; if (m[f, i] > hr) hr = m[f, i] }
		j = 0; for (r in rounds) { j++; q[j] = byRound[f, r] / byRound["raw", r] }
		printf "%-12s %6.2f (%.2f-%.2f) %8.2f %12.0f %14.2f\n", f, median(x, k), lo, hi, median(y, k), hr / 1024, median(q, j)
	}
}' "$RESULTS" | tee "$RIG/formats-report-$RUN.txt"
log "results: $RESULTS"
