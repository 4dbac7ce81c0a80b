# Functions shared by the rig scripts (kafka.sh, kafka-cluster.sh, azurite.sh), the
# benchmark scripts (bench/*.sh) and scripts/test.sh. Sourced, not run:
#
#   LOG_TAG=kafka.sh
#   source "$SCRIPT_DIR/lib.sh"
#
# LOG_TAG names the caller in its log lines.

LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf '[%s] %s\n' "${LOG_TAG:-tvm2kafka}" "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

# ---------------------------------------------------------------- processes
# port_open HOST PORT: something accepts TCP connections there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# lock_state DIR SECONDS serialises start/stop/clean between concurrent callers (two
# test runs, a test restarting a broker while a benchmark starts it, ...) on fd 9.
lock_state() {
	mkdir -p "$1"
	exec 9>"$1/.ctl.lock"
	flock -w "$2" 9 || die "could not lock $1/.ctl.lock within $2 s"
}

# is_ours PID CMDLINE succeeds when PID is alive and its command line holds CMDLINE
# (a recycled pid is not mistaken for ours).
is_ours() {
	local cmd
	[[ "$1" =~ ^[0-9]+$ ]] && kill -0 "$1" 2>/dev/null &&
		cmd="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" && [[ "$cmd" == *"$2"* ]]
}

# find_running PIDFILE WORD CMDLINE prints the pid of our process and succeeds when it
# runs: the pid file's, or else one whose command line holds CMDLINE among those holding
# WORD (one argument of it, no spaces); a pid file lost to a concurrent start is rewritten.
find_running() {
	local pidfile=$1 word=$2 cmdline=$3 pid
	if [[ -f "$pidfile" ]]; then
		pid="$(cat "$pidfile")"
		if is_ours "$pid" "$cmdline"; then
			echo "$pid"
			return 0
		fi
	fi
	for pid in $(grep -lsF -- "$word" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
		if is_ours "$pid" "$cmdline"; then
			mkdir -p "$(dirname "$pidfile")"
			echo "$pid" >"$pidfile"
			echo "$pid"
			return 0
		fi
	done
	return 1
}

# kill_wait PID: SIGKILL, then wait until the process is gone.
kill_wait() {
	kill -KILL "$1" 2>/dev/null || true
	while kill -0 "$1" 2>/dev/null; do sleep 0.1; done
}

# stop_pid PID SIGNAL SECONDS: signal the process and wait until it is gone; after
# SECONDS it is killed.
stop_pid() {
	local pid=$1 deadline=$((SECONDS + $3))
	kill "-$2" "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
	if kill -0 "$pid" 2>/dev/null; then
		log "pid $pid did not stop within $3 s; killing it"
		kill_wait "$pid"
	fi
}

# print_env NAME=VALUE...: `export NAME=VALUE` lines, quoted for eval.
print_env() {
	local kv
	for kv in "$@"; do printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"; done
}

# ---------------------------------------------------------------- Kafka brokers
# kafka_jvm HEAP LOG4J DIR sets KAFKA_JVM to the java command line, up to the main
# class, of a broker or Kafka tool from the jar cache $JARS logging to DIR.
kafka_jvm() {
	# shellcheck disable=SC2206 # HEAP is a list of JVM options
	KAFKA_JVM=(java $1 -XX:+UseG1GC -Djava.awt.headless=true
		-Dlog4j2.configurationFile="$2" -Dkafka.logs.dir="$3" -cp "$JARS/*")
}

# kafka_defaults RF MIN_ISR prints the server.properties lines of a broker's defaults:
# replication factor RF and min.insync.replicas MIN_ISR for new and internal topics, no
# automatic topic creation.
kafka_defaults() {
	cat <<-EOF
		num.partitions=1
		default.replication.factor=$1
		min.insync.replicas=$2
		offsets.topic.replication.factor=$1
		offsets.topic.num.partitions=3
		transaction.state.log.replication.factor=$1
		transaction.state.log.min.isr=$2
		share.coordinator.state.topic.replication.factor=$1
		share.coordinator.state.topic.min.isr=$2
		auto.create.topics.enable=false
		delete.topic.enable=true
		group.initial.rebalance.delay.ms=0
	EOF
}

# kafka_log4j FILE LOGFILE writes a broker's log4j2 configuration: INFO to LOGFILE.
kafka_log4j() {
	cat >"$1" <<-EOF
		status = warn
		appender.file.type = File
		appender.file.name = FILE
		appender.file.fileName = $2
		appender.file.append = true
		appender.file.layout.type = PatternLayout
		appender.file.layout.pattern = [%d] %p %m (%c)%n
		rootLogger.level = INFO
		rootLogger.appenderRef.file.ref = FILE
		logger.kafka.name = kafka
		logger.kafka.level = INFO
		logger.state.name = state.change.logger
		logger.state.level = WARN
		logger.request.name = kafka.request.logger
		logger.request.level = WARN
	EOF
}

# brokers_seen ADDR prints how many unfenced brokers the broker at ADDR lists (kcat).
brokers_seen() {
	local md
	md="$(kcat -L -b "$1" -m 5 2>/dev/null)" || return 1
	[[ "$md" =~ (^|$'\n')\ *([0-9]+)\ brokers: ]] || return 1
	echo "${BASH_REMATCH[2]}"
}

# started_in_log LOGFILE: the broker logged "Kafka Server started" since its last
# "=== start" line (the readiness check without kcat).
started_in_log() {
	awk '/^=== start/ { up = 0 } /Kafka Server started/ { up = 1 } END { exit !up }' "$1" 2>/dev/null
}

# ---------------------------------------------------------------- services of a test or benchmark run
# start_service NAME starts scripts/NAME.sh (kafka, azurite, kafka-cluster) unless it
# already answers; what it starts is added to STARTED, for stop_started.
STARTED=()
start_service() {
	local t0=$SECONDS
	if "$LIB_DIR/$1.sh" status >/dev/null 2>&1; then
		log "$1 already running: using it, and leaving it running"
		return 0
	fi
	"$LIB_DIR/$1.sh" start || return 1
	STARTED+=("$1")
	log "$1 started in $((SECONDS - t0)) s"
}

# stop_started [NAME] stops NAME if start_service started it, or, without NAME, every
# service it started, the last first.
stop_started() {
	local i rc=0 keep=()
	for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
		if [[ -z "${1:-}" || "${STARTED[i]}" == "$1" ]]; then
			"$LIB_DIR/${STARTED[i]}.sh" stop || { log "stopping ${STARTED[i]} failed"; rc=1; }
		else
			keep=("${STARTED[i]}" "${keep[@]}")
		fi
	done
	STARTED=("${keep[@]}")
	return "$rc"
}

# ---------------------------------------------------------------- benchmarks
# Globals of bench/run.sh and bench/table.sh: RIG, RUN, GEN (bench/gen), BLOB (Azurite).
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
maxrss() { awk -F': ' '/Maximum resident set size/ { print $2 }' "$1"; }

# serve_export DIR uploads the export generated in DIR to Azurite and serves a fake
# Defender API listing it, in the background (stop_servers stops it); sets URL to the
# API's URL.
SERVERS=()
serve_export() {
	local pid out="$RIG/manifest-$RUN-$(basename "$1")"
	URL=""
	"$GEN" upload --dir "$1" --blob "$BLOB" >&2
	"$GEN" serve-manifest --dir "$1" >"$out.url" 2>"$out.log" &
	pid=$!
	SERVERS+=("$pid")
	for _ in $(seq 100); do
		URL="$(head -n1 "$out.url" 2>/dev/null || true)"
		[[ "$URL" == http://* ]] && return 0
		kill -0 "$pid" 2>/dev/null || die "manifest server exited: $(cat "$out.log")"
		sleep 0.1
	done
	die "the manifest server of $1 did not print its URL"
}

stop_servers() {
	local pid
	for pid in "${SERVERS[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	SERVERS=()
}

# bench_traps makes the benchmark clean up when it exits, also on failure or
# interruption: bench_on_exit when the script defines it, then the manifest servers and
# the services it started are stopped.
bench_traps() {
	trap bench_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

bench_exit() {
	local rc=$?
	if declare -F bench_on_exit >/dev/null; then bench_on_exit || true; fi
	stop_servers
	stop_started || true
	exit "$rc"
}

# bench_build builds $TVM and $GEN.
bench_build() {
	log "building tvm2kafka and bench/gen"
	(cd "$LIB_DIR/.." && go build -o "$TVM" ./cmd/tvm2kafka && go build -o "$GEN" ./bench/gen)
}

# bench_services starts Kafka and Azurite unless they run and sets BROKERS, BLOB and JARS.
bench_services() {
	start_service kafka || die "Kafka did not start"
	start_service azurite || die "Azurite did not start"
	eval "$("$LIB_DIR/kafka.sh" env)"
	eval "$("$LIB_DIR/azurite.sh" env)"
	BROKERS="${IT_KAFKA_BROKERS:?scripts/kafka.sh env did not set IT_KAFKA_BROKERS}"
	BLOB="${IT_AZURITE_BLOB:?scripts/azurite.sh env did not set IT_AZURITE_BLOB}"
	JARS="${IT_KAFKA_JARS:?scripts/kafka.sh env did not set IT_KAFKA_JARS}"
}

# usage prints the comment block at the top of the running script.
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
