#!/usr/bin/env bash
# The one test command (also what .ci/run runs).
#
#   scripts/test.sh           everything: tidy modules, format, vet, staticcheck, unit tests, a
#                             real Kafka broker and Azurite, integration tests (build tag
#                             `integration`), then a three-broker cluster for the tests named
#                             TestCluster… (started for them, stopped right after), fuzz smoke,
#                             benchmark smoke
#   scripts/test.sh --unit    the checks and unit tests only (no services), for quick local runs
#
# On a fresh machine it installs what is missing: kcat (Debian), Go modules, staticcheck
# (go install, pinned below), the Kafka jars (Maven Central, cached in
# ${TVM2KAFKA_CACHE:-~/.cache/tvm2kafka}), Azurite (npm), Apicurio Registry (Maven Central,
# scripts/registry.sh; a Java 21+ from Debian when the machine has none) and the Kafka Streams
# application of the end-to-end tests (Maven, scripts/streamsapp.sh).
# Services it started are stopped on exit, also when a step fails or it is interrupted.
# Every step runs even when an earlier one failed; the exit status is non-zero if any failed.
#
# Environment: FUZZTIME (default 100000x: executions, not seconds, per fuzz target — a
# duration races Go 1.26's fuzz coordinator, go.dev/issue/75804, which then fails a target
# with "context deadline exceeded" and no crasher); TVM2KAFKA_RIG_DIR, TVM2KAFKA_CACHE,
# KAFKA_RIG_PORT, AZURITE_PORT, KAFKA_CLUSTER_PORT (see scripts/kafka.sh, kafka-cluster.sh).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"
LOG_TAG=test.sh
# shellcheck source=scripts/lib.sh
source "$SCRIPT_DIR/lib.sh"
cd "$REPO_DIR"

MODE=all
case "${1:-}" in
"") ;;
--unit) MODE=unit ;;
-h | --help)
	sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
*)
	echo "usage: $0 [--unit]" >&2
	exit 2
	;;
esac

FUZZTIME="${FUZZTIME:-100000x}"
STATICCHECK_VERSION=v0.8.2 # staticcheck 2026.2.2, the release for Go 1.26
RIG_DIR="${TVM2KAFKA_RIG_DIR:-$REPO_DIR/.rig}"
export TVM2KAFKA_RIG_DIR="$RIG_DIR"
mkdir -p "$RIG_DIR"

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	export PATH="$PATH:/usr/local/go/bin"
fi

T0=$SECONDS
COUNTS="$RIG_DIR/test-counts"
: >"$COUNTS"
FAILED=()
RESULTS=()
# Tests that need the three-broker cluster (testrig.ClusterEnv insists on the prefix).
CLUSTER_TESTS='^TestCluster'

PREFETCH_PID=
CLOSING_LINE=

section() { printf '\n\033[1m==== %s\033[0m  (t+%ds)\n' "$*" "$((SECONDS - T0))"; }

# step NAME CMD...: run a step, record its result, never abort the script.
step() {
	local _name=$1 _t0=$SECONDS _rc=0
	shift
	section "$_name"
	"$@" || _rc=$?
	if ((_rc == 0)); then
		RESULTS+=("PASS  $_name ($((SECONDS - _t0)) s)")
	else
		RESULTS+=("FAIL  $_name ($((SECONDS - _t0)) s, exit $_rc)")
		FAILED+=("$_name")
	fi
	return 0
}

cleanup() {
	local rc=$?
	set +e
	if [[ -n "$PREFETCH_PID" ]]; then
		kill "$PREFETCH_PID" 2>/dev/null
		wait "$PREFETCH_PID" 2>/dev/null
	fi
	if ((${#STARTED[@]})); then
		section "Stop services"
		stop_started
	fi
	# The test count is the very last line, after the services' shutdown.
	[[ -n "$CLOSING_LINE" ]] && printf '%s\n' "$CLOSING_LINE"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

as_root() {
	if [[ "$(id -u)" == 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo "$@"
	else
		echo "need root to run: $*" >&2
		return 1
	fi
}

# ------------------------------------------------------------------ steps
check_tools() {
	local missing=()
	for tool in go gofmt; do command -v "$tool" >/dev/null || missing+=("$tool"); done
	if [[ $MODE == all ]]; then
		for tool in java mvn npm node curl openssl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
	fi
	if ((${#missing[@]})); then
		echo "missing tools: ${missing[*]}" >&2
		return 1
	fi
	go version
	if [[ $MODE == all ]]; then
		java -version 2>&1 | head -n1
		echo "node $(node --version), npm $(npm --version)"
		if ! command -v kcat >/dev/null; then
			echo "installing kcat (Debian package)"
			as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null
		fi
		kcat -V 2>&1 | head -n1
		# Apicurio Registry (the Schema Registry of the typed value formats) needs Java 21+.
		if ! "$SCRIPT_DIR/registry.sh" java >/dev/null 2>&1; then
			echo "installing a Java 21+ runtime for Apicurio Registry (Debian package)"
			as_root apt-get update -qq && { as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-21-jre-headless >/dev/null ||
				as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-25-jre-headless >/dev/null; }
		fi
		echo "registry: $("$SCRIPT_DIR/registry.sh" java)"
	fi
}

go_modules() { go mod download; }

# go.mod and go.sum must be what `go mod tidy` makes of them.
check_tidy() {
	local diff
	if ! diff="$(go mod tidy -diff 2>&1)"; then
		echo "go.mod / go.sum are not tidy (run go mod tidy):"
		echo "$diff"
		return 1
	fi
	echo "go mod tidy: ok"
}

# staticcheck, installed at the pinned version into the rig directory.
run_staticcheck() {
	local bin="$RIG_DIR/bin/staticcheck"
	if [[ ! -x "$bin" ]] || ! "$bin" -version 2>/dev/null | grep -qF "(${STATICCHECK_VERSION#v})"; then
		echo "installing staticcheck $STATICCHECK_VERSION"
		GOBIN="$RIG_DIR/bin" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" || return 1
	fi
	"$bin" -version
	"$bin" ./... && "$bin" -tags integration ./... && echo "staticcheck: ok"
}

check_format() {
	local files
	files="$(find . -name '*.go' -not -path './.rig/*' -not -path '*/node_modules/*' -not -path './.git/*' -print0 |
		xargs -0 -r gofmt -l)"
	if [[ -n "$files" ]]; then
		echo "not gofmt-ed (run gofmt -w):"
		echo "$files"
		return 1
	fi
	echo "gofmt: ok"
}

vet() {
	go vet ./... && go vet -tags integration ./... && echo "go vet: ok"
}

# gotest COUNTS ARGS...: go test -json ARGS, shown as plain go test output
# (failing tests in full), test counts appended to COUNTS.
gotest() {
	local counts=$1
	shift
	go test -json "$@" | python3 "$SCRIPT_DIR/gotest-filter.py" "$counts"
}

unit_tests() { gotest "$COUNTS" -race -count=1 ./...; }

# Packages holding files with the integration build tag.
integration_packages() {
	grep -rlE --include='*.go' '^//go:build .*\bintegration\b' . 2>/dev/null |
		grep -vE '^\./(\.rig|scripts/azurite/node_modules)/' |
		xargs -r -n1 dirname | sort -u
}

start_services() {
	if [[ -n "$PREFETCH_PID" ]]; then
		echo "waiting for the jar / npm prefetch…"
		local rc=0
		wait "$PREFETCH_PID" || rc=$?
		PREFETCH_PID=
		cat "$RIG_DIR/prefetch.log"
		((rc == 0)) || return "$rc"
	fi
	start_service kafka && start_service azurite && start_service registry || return 1
	eval "$("$SCRIPT_DIR/kafka.sh" env)"
	eval "$("$SCRIPT_DIR/azurite.sh" env)"
	eval "$("$SCRIPT_DIR/registry.sh" env)"
	eval "$("$SCRIPT_DIR/streamsapp.sh" env)"
	env | grep '^IT_' | grep -v PASSWORD | sort
}

# test_packages LISTER ARGS...: gotest ARGS on the packages that LISTER prints.
test_packages() {
	local pkgs lister=$1
	shift
	mapfile -t pkgs < <("$lister")
	if ((${#pkgs[@]} == 0)); then
		echo "no packages found ($lister)"
		return 1
	fi
	echo "packages: ${pkgs[*]}"
	gotest "$COUNTS" "$@" "${pkgs[@]}"
}

integration_tests() {
	if [[ -z "${IT_KAFKA_BROKERS:-}" ]]; then
		echo "services are not up; not running integration tests"
		return 1
	fi
	test_packages integration_packages -race -count=1 -tags integration -p 1 -timeout 30m -skip "$CLUSTER_TESTS"
}

# Packages of integration tests named TestCluster….
cluster_packages() {
	integration_packages | while read -r dir; do
		grep -qsE '^func TestCluster[A-Za-z0-9_]*\(' "$dir"/*_test.go && echo "$dir"
	done
}

start_cluster() {
	start_service kafka-cluster || return 1
	eval "$("$SCRIPT_DIR/kafka-cluster.sh" env)"
	env | grep '^IT_CLUSTER_' | sort
}

cluster_tests() {
	if [[ -z "${IT_CLUSTER_BROKERS:-}" || -z "${IT_KAFKA_BROKERS:-}" ]]; then
		echo "the cluster or the services are not up; not running the cluster tests"
		return 1
	fi
	# Without -race for the test processes themselves: they generate, read back and
	# check a 1,000,000-record topic, which the race detector slows from about 20 s to
	# 4 minutes; the tvm2kafka binary they run is still built with -race.
	test_packages cluster_packages -count=1 -tags integration -p 1 -timeout 30m -run "$CLUSTER_TESTS"
}

# The cluster's three JVMs would only slow the steps after it down.
stop_cluster() { stop_started kafka-cluster; }

bench_smoke() { "$REPO_DIR/bench/run.sh" --smoke && "$REPO_DIR/bench/table.sh" --smoke; }

# "file:FuzzName" for every fuzz target.
fuzz_targets() {
	grep -rE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' . 2>/dev/null |
		grep -vE '^\./(\.rig|scripts/azurite/node_modules)/' |
		sed -E 's/^([^:]+):func (Fuzz[A-Za-z0-9_]*)\(.*/\1:\2/' | sort
}

fuzz_smoke() {
	local rc=0 file dir name target targets
	mapfile -t targets < <(fuzz_targets)
	if ((${#targets[@]} == 0)); then
		echo "no fuzz targets found"
		return 0
	fi
	for target in "${targets[@]}"; do
		file=${target%%:*}
		name=${target##*:}
		dir="./$(dirname "${file#./}")"
		echo "--- $name ($dir) for $FUZZTIME"
		go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$dir" || rc=1
	done
	return "$rc"
}

# ------------------------------------------------------------------ run
step "Tools" check_tools
if [[ $MODE == all && ${#FAILED[@]} -eq 0 ]]; then
	# Fetch the Kafka jars and Azurite, and build the Kafka Streams application of the
	# end-to-end tests (Maven), while the Go steps run.
	("$SCRIPT_DIR/kafka.sh" jars && "$SCRIPT_DIR/azurite.sh" install && "$SCRIPT_DIR/registry.sh" install && "$SCRIPT_DIR/streamsapp.sh" build) \
		>"$RIG_DIR/prefetch.log" 2>&1 &
	PREFETCH_PID=$!
fi
step "Go modules" go_modules
step "go mod tidy" check_tidy
step "gofmt" check_format
step "go vet" vet
step "staticcheck" run_staticcheck
step "Unit tests (go test -race ./...)" unit_tests

if [[ $MODE == all ]]; then
	step "Start Kafka and Azurite" start_services
	step "Integration tests (-tags integration)" integration_tests
	step "Start the three-broker cluster" start_cluster
	step "Cluster tests (${CLUSTER_TESTS}: exactly once under faults, rolling restart)" cluster_tests
	step "Stop the three-broker cluster" stop_cluster
	step "Fuzz smoke (${FUZZTIME} per target)" fuzz_smoke
	step "Benchmark smoke (bench/run.sh --smoke, bench/table.sh --smoke)" bench_smoke
fi

section "Summary ($((SECONDS - T0)) s)"
printf '%s\n' "${RESULTS[@]}"
read -r passed failed skipped < <(awk '{p+=$1; f+=$2; s+=$3} END {print p+0, f+0, s+0}' "$COUNTS")
if ((${#FAILED[@]})); then
	printf '\nFAILED: %s\n' "${FAILED[*]}"
	# The failed steps count as failures even when no Go test failed.
	CLOSING_LINE=$(printf 'tests: %d passed, %d failed, %d skipped' "$passed" "$((failed > 0 ? failed : ${#FAILED[@]}))" "$skipped")
	exit 1
fi
echo
echo "ALL PASSED"
CLOSING_LINE=$(printf 'tests: %d passed, %d failed, %d skipped' "$passed" "$failed" "$skipped")
