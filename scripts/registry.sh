#!/usr/bin/env bash
# The rig's Schema Registry: Apicurio Registry 3.3.3 (a Quarkus application, in-memory
# storage, no Kafka needed) from Maven Central, reached through its Confluent-compatible
# API (/apis/ccompat/v7), for the typed value formats (KAFKA_VALUE_FORMAT=avro and
# json-schema) of the end-to-end tests.
#
#   scripts/registry.sh install   fetch io.apicurio:apicurio-registry-app:3.3.3:tar.gz:all
#                                 with Maven (~160 MB, cached) and unpack it
#   scripts/registry.sh start     start it on 127.0.0.1:$REGISTRY_PORT (default 28081)
#   scripts/registry.sh stop|status|clean
#   scripts/registry.sh java      print the Java 21+ it runs with (fails when there is none)
#   scripts/registry.sh env       print `export IT_SCHEMA_REGISTRY_URL=...` for the tests
#
# Apicurio Registry 3 needs Java 21 or newer: REGISTRY_JAVA, or the newest JDK of
# /usr/lib/jvm that is 21+, or `java` on the PATH if it is. The machine's Java 17 is not.
#
# Environment:
#   TVM2KAFKA_RIG_DIR  state root, default <repo>/.rig (this registry uses <root>/registry)
#   TVM2KAFKA_CACHE    download cache, default ~/.cache/tvm2kafka
#   REGISTRY_PORT      HTTP port, default 28081
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_TAG=registry.sh
# shellcheck source=scripts/lib.sh
source "$SCRIPT_DIR/lib.sh"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"

VERSION=3.3.3
ARTIFACT="io.apicurio:apicurio-registry-app:$VERSION:tar.gz:all"
CACHE="${TVM2KAFKA_CACHE:-$HOME/.cache/tvm2kafka}"
APP="$CACHE/apicurio-registry-$VERSION"
RIG_DIR="${TVM2KAFKA_RIG_DIR:-$REPO_DIR/.rig}"
STATE="$RIG_DIR/registry"
LOGFILE="$STATE/registry.log"
PIDFILE="$STATE/registry.pid"
HOST=127.0.0.1
PORT="${REGISTRY_PORT:-28081}"
URL="http://$HOST:$PORT/apis/ccompat/v7"
START_TIMEOUT="${REGISTRY_START_TIMEOUT:-120}"

install() {
	[[ -f "$APP/.complete" ]] && return 0
	mkdir -p "$CACHE"
	exec 8>"$CACHE/.registry.lock"
	flock -w 900 8 || die "could not lock $CACHE/.registry.lock"
	[[ -f "$APP/.complete" ]] && return 0
	command -v mvn >/dev/null || die "mvn not found: install Maven (apt-get install -y maven)"
	log "fetching $ARTIFACT with Maven"
	local t0=$SECONDS tmp
	tmp="$(mktemp -d "$CACHE/registry.tmp.XXXXXX")"
	if ! mvn -q -B dependency:copy -Dartifact="$ARTIFACT" -DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
		cat "$tmp.log" >&2
		rm -rf "$tmp" "$tmp.log"
		die "Maven could not fetch $ARTIFACT (its output is above)"
	fi
	rm -f "$tmp.log"
	tar -xzf "$tmp"/apicurio-registry-app-*.tar.gz -C "$tmp"
	rm -f "$tmp"/apicurio-registry-app-*.tar.gz
	local jar
	jar="$(find "$tmp" -name quarkus-run.jar | head -1)"
	[[ -n "$jar" ]] || {
		rm -rf "$tmp"
		die "the archive has no quarkus-run.jar"
	}
	rm -rf "$APP"
	mv "$(dirname "$jar")" "$APP"
	rm -rf "$tmp"
	touch "$APP/.complete"
	log "Apicurio Registry $VERSION ready in $APP ($((SECONDS - t0)) s)"
}

# java_major BIN prints the major version of the java binary BIN.
java_major() { "$1" -version 2>&1 | sed -nE '1s/.*version "([0-9]+).*/\1/p'; }

find_java() {
	local j
	for j in ${REGISTRY_JAVA:-} $(ls -d /usr/lib/jvm/*/bin/java 2>/dev/null | sort -rV) "$(command -v java || true)"; do
		[[ -x "$j" ]] || continue
		if (($(java_major "$j") >= 21)); then
			echo "$j"
			return 0
		fi
	done
	die "Apicurio Registry needs Java 21 or newer and none was found: set REGISTRY_JAVA, or install one (apt-get install -y openjdk-21-jre-headless)"
}

running() { find_running "$PIDFILE" "-Dtvm2kafka.rig.registry=$STATE" "-Dtvm2kafka.rig.registry=$STATE"; }

ready() { curl -fsS -o /dev/null "$URL/subjects" 2>/dev/null; }

cmd_start() {
	local pid
	if pid="$(running)" && ready; then
		log "already running (pid $pid)"
		return 0
	fi
	[[ -n "${pid:-}" ]] && kill_wait "$pid"
	port_open "$HOST" "$PORT" && die "port $PORT is taken by another process"
	install
	local java t0=$SECONDS
	java="$(find_java)"
	mkdir -p "$STATE"
	log "starting Apicurio Registry $VERSION with $java (log: $LOGFILE)"
	echo "=== start $(date -u +%FT%TZ)" >>"$LOGFILE"
	cd "$STATE" # Quarkus writes its work files beside it
	nohup "$java" -Xmx384m -Dtvm2kafka.rig.registry="$STATE" \
		-Dquarkus.http.host="$HOST" -Dquarkus.http.port="$PORT" \
		-Dquarkus.management.enabled=false -Dquarkus.log.level=WARN \
		-jar "$APP/quarkus-run.jar" </dev/null >>"$LOGFILE" 2>&1 8>&- 9>&- &
	pid=$!
	echo "$pid" >"$PIDFILE"
	local deadline=$((SECONDS + START_TIMEOUT))
	until ready; do
		if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
			tail -n 40 "$LOGFILE" >&2 || true
			kill_wait "$pid"
			rm -f "$PIDFILE"
			die "the registry did not answer at $URL"
		fi
		sleep 0.5
	done
	log "registry ready in $((SECONDS - t0)) s (pid $pid): $URL"
}

cmd_stop() {
	local pid
	if ! pid="$(running)"; then
		rm -f "$PIDFILE"
		log "not running"
		return 0
	fi
	log "stopping registry (pid $pid)"
	stop_pid "$pid" TERM 30
	rm -f "$PIDFILE"
	log "stopped"
}

cmd_status() {
	local pid
	if pid="$(running)"; then
		if ready; then
			echo "running (pid $pid), $URL"
			return 0
		fi
		echo "running (pid $pid) but not answering"
		return 1
	fi
	echo "not running"
	return 3
}

case "${1:-}" in
install) install ;;
java) find_java ;;
start) lock_state "$STATE" 300 && cmd_start ;;
stop) lock_state "$STATE" 300 && cmd_stop ;;
status) cmd_status ;;
env) print_env "IT_SCHEMA_REGISTRY_URL=$URL" ;;
clean)
	lock_state "$STATE" 300 && cmd_stop
	rm -rf "$STATE"
	;;
*)
	echo "usage: $0 install|start|stop|status|env|clean" >&2
	exit 2
	;;
esac
