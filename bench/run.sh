#!/usr/bin/env bash
# tvm2kafka benchmark (README "Performance"): tvm2kafka against Kafka's own Java producer
# benchmark and against kcat on the same local Kafka, and tvm2kafka --dry-run against plain
# parallel gzip decompression.
#
#   bench/run.sh [--records N] [--parts N] [--rounds N] [--compression lz4]
#                [--partitions N] [--seed N] [--workers N] [--profile] [--no-java] [--smoke]
#
#   --records N       devices in the synthetic snapshot   (default 1000000)
#   --parts N         gzip part files                     (default 8)
#   --rounds N        rounds of every contender           (default 5)
#   --compression C   none|gzip|snappy|lz4|zstd, both producers (default lz4)
#   --partitions N    partitions of every bench topic      (default 6)
#   --workers N       TVM2KAFKA_WORKERS of tvm2kafka and dry-run (default: unset, the
#                     automatic default); bench/workers.sh measures memory per worker
#   --profile         round 1 of tvm2kafka and dry-run also writes CPU and allocation
#                     profiles (TVM2KAFKA_CPU_PROFILE / TVM2KAFKA_MEM_PROFILE) to
#                     .rig/bench/{cpu,mem}-{tvm2kafka,dry-run}-RUN.prof; read them with
#                     go tool pprof -top .rig/bench/tvm2kafka FILE
#   --no-java         leave out the Java producer (it needs a JVM heap of about twice the
#                     export's decompressed size for its payload file)
#   --smoke           20,000 records, 1 round: proves the benchmark works (CI)
#
# What it does:
#   1. builds .rig/bench/tvm2kafka (./cmd/tvm2kafka) and .rig/bench/gen (./bench/gen)
#   2. generates the parts with internal/synth, plus the same lines pre-keyed as
#      "DeviceId<TAB>line" for kcat and the plain lines as the Java producer's payload
#      file (cached in .rig/bench/data-*, reused next time)
#   3. starts Kafka and Azurite with scripts/kafka.sh and scripts/azurite.sh (unless
#      already running; what it starts it stops), uploads the parts to Azurite and
#      serves a fake Defender API whose InfoGatheringExport answer lists their SAS URLs
#   4. per round, on fresh topics with the same partition count:
#        java        Kafka's org.apache.kafka.tools.ProducerPerformance (kafka-tools jar of the
#                    rig's jar cache): the same lines from --payload-file, unkeyed, acks=all,
#                    linger.ms=5, batch.size=1000000, compression C; its own records/s
#                    (JVM start and payload loading excluded)
#        tvm2kafka   `tvm2kafka run` (Azurite → Kafka), under /usr/bin/time -v; records/s
#                    from its summary line (download, gunzip, parsing, keyed produce)
#        kcat        zcat keyed parts | kcat -P -K '\t' -X topic.partitioner=murmur2_random
#                    -X acks=all -z C
#        dry-run     `tvm2kafka run` with TVM2KAFKA_DRY_RUN=true (download, gunzip, framing, keys; no Kafka)
#        gunzip      the parts decompressed by `gzip -dc` (pigz if present) on all cores
#      and checks every topic holds what it should
#      Rounds alternate who goes first (Java before tvm2kafka in odd rounds, after it
#      in even ones; the same for kcat).
#   5. prints records/s, MB/s (decompressed), peak RSS: medians and min–max, the
#      ratios tvm2kafka/kcat and dry-run/gunzip, and per round the records/s of the
#      Java producer and of tvm2kafka, their ratio and the median of the ratios;
#      the report is kept in .rig/bench/
#
# Environment: BENCH_DIR (builds, data, logs, results; default .rig/bench),
# BENCH_LOG_LEVEL (tvm2kafka's LOG_LEVEL, default info), TVM2KAFKA_RIG_DIR (the
# test rig's state, shared with scripts/kafka.sh and scripts/azurite.sh).
# Exits non-zero when anything fails: a build, a service, a contender, a count.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_TAG=bench
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
RIG="${BENCH_DIR:-${TVM2KAFKA_RIG_DIR:-$ROOT/.rig}/bench}"

records=1000000
parts=8
rounds=5
compression=lz4
partitions=6
seed=1
workers=""
profile=0
java=1

while [[ $# -gt 0 ]]; do
	case "$1" in
	--records) records="${2:?--records needs a value}"; shift 2 ;;
	--parts) parts="${2:?--parts needs a value}"; shift 2 ;;
	--rounds) rounds="${2:?--rounds needs a value}"; shift 2 ;;
	--compression) compression="${2:?--compression needs a value}"; shift 2 ;;
	--partitions) partitions="${2:?--partitions needs a value}"; shift 2 ;;
	--seed) seed="${2:?--seed needs a value}"; shift 2 ;;
	--workers) workers="${2:?--workers needs a value}"; shift 2 ;;
	--profile) profile=1; shift ;;
	--no-java) java=0; shift ;;
	--smoke) records=20000; rounds=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done
[[ -z "$workers" || "$workers" =~ ^[1-9][0-9]*$ ]] || die "--workers must be a positive number, got '$workers'"
for v in records parts rounds partitions seed; do
	[[ "${!v}" =~ ^[0-9]+$ ]] || die "--$v must be a number, got '${!v}'"
done
((rounds >= 1 && parts >= 1 && partitions >= 1 && records >= 1)) || die "--records, --parts, --rounds, --partitions must be ≥ 1"
case "$compression" in none | gzip | snappy | lz4 | zstd) ;; *) die "--compression must be none|gzip|snappy|lz4|zstd" ;; esac

command -v go >/dev/null || die "go not found"
command -v kcat >/dev/null || die "kcat not found (Debian: apt-get install kcat)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found (Debian: apt-get install time)"
((java == 0)) || command -v java >/dev/null || die "java not found (or pass --no-java)"

mkdir -p "$RIG"
RUN="$(date +%Y%m%dT%H%M%S)-$$"
RESULTS="$RIG/results-$RUN.tsv"
REPORT="$RIG/report-$RUN.txt"
DATA="$RIG/data-r$records-p$parts-s$seed"
GEN="$RIG/gen"
TVM="$RIG/tvm2kafka"

# ------------------------------------------------------------------ build and data
bench_traps
bench_build
"$GEN" gen --records "$records" --parts "$parts" --seed "$seed" --out "$DATA" >&2
PAYLOAD="$DATA/payload.txt"
if ((java)) && [[ ! -s "$PAYLOAD" || "$PAYLOAD" -ot "$DATA/layout.json" ]]; then
	log "writing the Java producer's payload file (the parts' lines)"
	zcat "$DATA"/parts/*.json.gz >"$PAYLOAD.tmp"
	mv "$PAYLOAD.tmp" "$PAYLOAD"
fi

# ------------------------------------------------------------------ services
bench_services
if ((java)); then
	ls "$JARS"/kafka-tools-*.jar >/dev/null 2>&1 || die "no kafka-tools jar in $JARS (scripts/kafka.sh jars)"
	# Tool logging at WARN on stderr: stdout holds only the benchmark's lines.
	cat >"$RIG/log4j2-tools.properties" <<-'EOF'
		status = warn
		appender.err.type = Console
		appender.err.name = STDERR
		appender.err.target = SYSTEM_ERR
		appender.err.layout.type = PatternLayout
		appender.err.layout.pattern = [%d] %p %m (%c)%n
		rootLogger.level = WARN
		rootLogger.appenderRef.err.ref = STDERR
	EOF
	# The tool holds every payload line in memory (as byte arrays, after reading
	# them as strings): a heap of twice the file, plus room for the producer.
	JAVA_HEAP_MB=$(($(stat -c %s "$PAYLOAD") * 2 / 1048576 + 512))
fi

serve_export "$DATA"
MDE_URL="$URL"
log "fake Defender API at $MDE_URL"

# ------------------------------------------------------------------ contenders
# expect_count TOPIC N: the topic holds exactly N messages.
expect_count() {
	local got
	got="$("$GEN" count --brokers "$BROKERS" --topic "$1")"
	[[ "$got" == "$2" ]] || die "topic $1 holds $got messages, want $2"
}

tvm_env=(
	env -u AZURE_CLIENT_SECRET -u AZURE_CLIENT_CERTIFICATE_PATH -u AZURE_FEDERATED_TOKEN_FILE
	KAFKA_BROKERS="$BROKERS" KAFKA_COMPRESSION="$compression"
	MDE_API_URL="$MDE_URL" MDE_ACCESS_TOKEN=bench
	LOG_LEVEL="${BENCH_LOG_LEVEL:-info}" LOG_FORMAT=json
)
[[ -z "$workers" ]] || tvm_env+=(TVM2KAFKA_WORKERS="$workers")

# prof_env CONTENDER ROUND: the profile settings of round 1 with --profile.
prof_env() {
	((profile)) && [[ "$2" == 1 ]] || return 0
	printf '%s\n' "TVM2KAFKA_CPU_PROFILE=$RIG/cpu-$1-$RUN.prof" "TVM2KAFKA_MEM_PROFILE=$RIG/mem-$1-$RUN.prof"
}

# check_summary LOG: tvm2kafka's end-of-run summary line, when there is one,
# counts every record (a dry run publishes nothing a topic could prove).
check_summary() {
	local line
	line="$(grep '"snapshot summary"' "$1" | tail -n1 || true)"
	if [[ -z "$line" ]]; then
		log "warning: no summary line in $1"
	elif [[ "$line" != *"\"records\":$records,"* ]]; then
		die "tvm2kafka did not count $records records: $line"
	fi
}

# summary_rps LOG: records_per_s of tvm2kafka's summary line.
summary_rps() {
	grep '"snapshot summary"' "$1" | tail -n1 | sed -n 's/.*"records_per_s":\([0-9.e+]*\).*/\1/p'
}

run_tvm2kafka() { # round
	local topic="bench.tvm2kafka.$RUN.$1" tf="$RIG/time-tvm2kafka-$RUN-$1.txt" lf="$RIG/tvm2kafka-$RUN-$1.log" t0 t1 pe rps
	mapfile -t pe < <(prof_env tvm2kafka "$1")
	"$GEN" create-topic --brokers "$BROKERS" --topic "$topic" --partitions "$partitions" >/dev/null
	t0="$(now)"
	/usr/bin/time -v -o "$tf" "${tvm_env[@]}" "${pe[@]}" KAFKA_TOPIC="$topic" "$TVM" run >"$lf" 2>&1 ||
		{ tail -n 20 "$lf" >&2; die "tvm2kafka run failed (log: $lf)"; }
	t1="$(now)"
	# every record, plus snapshot-start and snapshot-end on every partition
	expect_count "$topic" $((records + 2 * partitions))
	"$GEN" delete-topic --brokers "$BROKERS" --topic "$topic" >/dev/null
	check_summary "$lf"
	rps="$(summary_rps "$lf")"
	[[ -n "$rps" ]] || die "no records_per_s in tvm2kafka's summary line ($lf)"
	printf 'tvm2kafka\t%s\t%s\t%s\t%s\n' "$1" "$(elapsed "$t0" "$t1")" "$(maxrss "$tf")" "$rps" >>"$RESULTS"
	log "round $1 tvm2kafka: $(elapsed "$t0" "$t1") s, $rps records/s"
}

run_java() { # round
	((java)) || return 0
	local topic="bench.java.$RUN.$1" tf="$RIG/time-java-$RUN-$1.txt" lf="$RIG/java-$RUN-$1.log" t0 t1 total rps
	"$GEN" create-topic --brokers "$BROKERS" --topic "$topic" --partitions "$partitions" >/dev/null
	t0="$(now)"
	/usr/bin/time -v -o "$tf" java -Xms"${JAVA_HEAP_MB}m" -Xmx"${JAVA_HEAP_MB}m" -XX:+UseG1GC \
		-Dlog4j2.configurationFile="$RIG/log4j2-tools.properties" -cp "$JARS/*" \
		org.apache.kafka.tools.ProducerPerformance --topic "$topic" --num-records "$records" \
		--throughput -1 --payload-file "$PAYLOAD" --producer-props bootstrap.servers="$BROKERS" \
		acks=all linger.ms=5 batch.size=1000000 compression.type="$compression" >"$lf" 2>&1 ||
		{ tail -n 20 "$lf" >&2; die "the Java producer failed (log: $lf)"; }
	t1="$(now)"
	# The final line: "N records sent, R records/sec (M MB/sec), … ms 50th, …"
	total="$(grep ' records/sec .* 50th' "$lf" | tail -n1)"
	rps="$(sed -n 's/^[0-9]* records sent, \([0-9.]*\) records\/sec.*/\1/p' <<<"$total")"
	[[ "$total" == "$records records sent,"* && -n "$rps" ]] ||
		{ tail -n 20 "$lf" >&2; die "no final line of $records records from the Java producer (log: $lf)"; }
	expect_count "$topic" "$records"
	"$GEN" delete-topic --brokers "$BROKERS" --topic "$topic" >/dev/null
	printf 'java\t%s\t%s\t%s\t%s\n' "$1" "$(elapsed "$t0" "$t1")" "$(maxrss "$tf")" "$rps" >>"$RESULTS"
	log "round $1 java: $rps records/s ($(elapsed "$t0" "$t1") s with JVM start and payload loading)"
}

run_kcat() { # round
	local topic="bench.kcat.$RUN.$1" tf="$RIG/time-kcat-$RUN-$1.txt" lf="$RIG/kcat-$RUN-$1.log" t0 t1 z=()
	[[ "$compression" == none ]] || z=(-z "$compression")
	"$GEN" create-topic --brokers "$BROKERS" --topic "$topic" --partitions "$partitions" >/dev/null
	t0="$(now)"
	zcat "$DATA"/keyed/*.tsv.gz |
		/usr/bin/time -v -o "$tf" kcat -P -b "$BROKERS" -t "$topic" -K '\t' \
			-X topic.partitioner=murmur2_random -X acks=all "${z[@]}" 2>"$lf" ||
		{ tail -n 20 "$lf" >&2; die "kcat pipeline failed (log: $lf)"; }
	t1="$(now)"
	expect_count "$topic" "$records"
	"$GEN" delete-topic --brokers "$BROKERS" --topic "$topic" >/dev/null
	printf 'kcat\t%s\t%s\t%s\n' "$1" "$(elapsed "$t0" "$t1")" "$(maxrss "$tf")" >>"$RESULTS"
	log "round $1 kcat: $(elapsed "$t0" "$t1") s"
}

run_dry() { # round
	local tf="$RIG/time-dry-run-$RUN-$1.txt" lf="$RIG/dry-run-$RUN-$1.log" t0 t1 pe
	mapfile -t pe < <(prof_env dry-run "$1")
	t0="$(now)"
	/usr/bin/time -v -o "$tf" "${tvm_env[@]}" "${pe[@]}" KAFKA_TOPIC=bench.dry-run TVM2KAFKA_DRY_RUN=true "$TVM" run >"$lf" 2>&1 ||
		{ tail -n 20 "$lf" >&2; die "tvm2kafka run --dry-run failed (log: $lf)"; }
	t1="$(now)"
	check_summary "$lf"
	printf 'dry-run\t%s\t%s\t%s\n' "$1" "$(elapsed "$t0" "$t1")" "$(maxrss "$tf")" >>"$RESULTS"
	log "round $1 dry-run: $(elapsed "$t0" "$t1") s"
}

run_gunzip() { # round
	local t0 t1 unz=(gzip -dc)
	command -v pigz >/dev/null && unz=(pigz -dc)
	t0="$(now)"
	printf '%s\0' "$DATA"/parts/*.json.gz | xargs -0 -P "$(nproc)" -n1 "${unz[@]}" >/dev/null
	t1="$(now)"
	printf 'gunzip\t%s\t%s\t0\n' "$1" "$(elapsed "$t0" "$t1")" >>"$RESULTS"
	log "round $1 gunzip: $(elapsed "$t0" "$t1") s"
}

printf '# contender\tround\twall_seconds\tmax_rss_kb\t[records_per_s reported by the contender]\n' >"$RESULTS"
log "$rounds round(s) of $records records in $parts parts, compression $compression, $partitions partitions"
for ((r = 1; r <= rounds; r++)); do
	# alternate who goes first, so neither always meets a warmer broker or page cache
	if ((r % 2)); then
		run_java "$r"; run_tvm2kafka "$r"; run_kcat "$r"; run_dry "$r"; run_gunzip "$r"
	else
		run_kcat "$r"; run_tvm2kafka "$r"; run_java "$r"; run_gunzip "$r"; run_dry "$r"
	fi
done

{
	printf 'tvm2kafka benchmark %s: compression %s, %d partitions, %d round(s), workers %s\n' "$RUN" "$compression" "$partitions" "$rounds" "${workers:-auto}"
	printf 'machine: %s, %s cores, %s MB RAM, %s\n' \
		"$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)" "$(nproc)" \
		"$(awk '/MemTotal/ { printf "%d", $2 / 1024 }' /proc/meminfo)" "$(go version | awk '{ print $3 }')"
	"$GEN" report --dir "$DATA" --results "$RESULTS"
} | tee "$REPORT"
log "results: $RESULTS, report: $REPORT"
if ((profile)); then
	log "profiles: $(ls "$RIG"/{cpu,mem}-*-"$RUN".prof 2>/dev/null | tr '\n' ' ')(go tool pprof -top $TVM FILE)"
fi
