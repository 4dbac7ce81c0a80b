#!/usr/bin/env bash
# The Kafka Streams application of the end-to-end tests (internal/streamsapp): a KTable over
# tvm2kafka's table topic joined with the records topic (README "Consuming").
#
#   scripts/streamsapp.sh build   build it with Maven (Java 17; org.apache.kafka:kafka-streams from
#                                 Maven Central into ~/.m2), unless sources and pom are unchanged
#   scripts/streamsapp.sh env     print `export IT_STREAMS_APP_CP=...` (its classpath) for the tests
#   scripts/streamsapp.sh run ARGS...   run it (see DeviceTableApp's usage)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
APP="$(cd "$SCRIPT_DIR/../internal/streamsapp" && pwd)"
TARGET="$APP/target"
CP="$TARGET/streamsapp-1.jar:$TARGET/lib/*"

log() { printf '[streamsapp.sh] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

stamp() { find "$APP/pom.xml" "$APP/src" -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1; }

build() {
	local want
	want="$(stamp)"
	if [[ -f "$TARGET/.built" && "$(cat "$TARGET/.built")" == "$want" && -f "$TARGET/streamsapp-1.jar" ]]; then
		return 0
	fi
	command -v mvn >/dev/null || die "mvn not found: install Maven (apt-get install -y maven)"
	command -v java >/dev/null || die "java not found: install a JDK 17+"
	log "building the Kafka Streams application with Maven"
	local t0=$SECONDS
	rm -rf "$TARGET/lib"
	if ! mvn -q -B -f "$APP/pom.xml" package dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$TARGET/lib" >"$APP/.build.log" 2>&1; then
		cat "$APP/.build.log" >&2
		die "Maven could not build $APP (its output is above)"
	fi
	rm -f "$APP/.build.log"
	echo "$want" >"$TARGET/.built"
	log "built in $((SECONDS - t0)) s"
}

case "${1:-}" in
build) build ;;
env) printf 'export IT_STREAMS_APP_CP=%q\n' "$CP" ;;
run)
	shift
	build
	exec java -Xmx256m -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$CP" tvm2kafka.streams.DeviceTableApp "$@"
	;;
*)
	echo "usage: $0 build|env|run ARGS..." >&2
	exit 2
	;;
esac
