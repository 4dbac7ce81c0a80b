#!/usr/bin/env bash
# Azurite (Azure Storage emulator, blob service only) for tests and local runs.
#
#   scripts/azurite.sh start    install the pinned azurite (npm ci, first time) and start
#                               azurite-blob on 127.0.0.1:10000, wait until it answers
#   scripts/azurite.sh stop     stop it
#   scripts/azurite.sh status   exit 0 when running
#   scripts/azurite.sh env      print `export IT_AZURITE_BLOB=...`
#
# Account: the well-known development account devstoreaccount1 with its published key.
# Data lives in memory only (--inMemoryPersistence): a restart starts empty.
#
# Settings (environment): TVM2KAFKA_RIG_DIR (state root, default <repo>/.rig; this
# service uses <root>/azurite), AZURITE_MEMORY_MB (in-memory extent limit, default 4096),
# AZURITE_PORT (default 10000).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_TAG=azurite.sh
# shellcheck source=scripts/lib.sh
source "$SCRIPT_DIR/lib.sh"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"
PKG_DIR="$SCRIPT_DIR/azurite"
BIN="$PKG_DIR/node_modules/.bin/azurite-blob"
RIG_DIR="${TVM2KAFKA_RIG_DIR:-$REPO_DIR/.rig}"
STATE="$RIG_DIR/azurite"
LOGFILE="$STATE/azurite.log"
PIDFILE="$STATE/azurite.pid"
HOST=127.0.0.1
PORT="${AZURITE_PORT:-10000}"
ACCOUNT=devstoreaccount1
START_TIMEOUT="${AZURITE_START_TIMEOUT:-60}"

install() {
	local stamp="$PKG_DIR/node_modules/.lock-stamp" want
	want="$(sha256sum "$PKG_DIR/package-lock.json" | cut -d' ' -f1)"
	if [[ -x "$BIN" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
		return 0
	fi
	command -v npm >/dev/null || die "npm not found: install Node.js"
	log "installing azurite with npm ci"
	local t0=$SECONDS
	npm ci --prefix "$PKG_DIR" --no-audit --no-fund --loglevel=error >&2
	echo "$want" >"$stamp"
	log "azurite installed in $((SECONDS - t0)) s"
}

# running prints the pid of the Azurite started by this script and succeeds when it runs.
running() { find_running "$PIDFILE" "$BIN" "$BIN --blobHost $HOST --blobPort $PORT "; }

# ready: the blob endpoint answers HTTP (an anonymous list is refused with 403,
# which is an answer).
ready() {
	local code
	code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$HOST:$PORT/$ACCOUNT?comp=list" 2>/dev/null)" || return 1
	[[ "$code" =~ ^[1-5][0-9][0-9]$ ]]
}

cmd_start() {
	local pid
	if pid="$(running)"; then
		log "already running (pid $pid)"
		return 0
	fi
	if port_open "$HOST" "$PORT"; then
		die "port $PORT is taken by another process"
	fi
	command -v curl >/dev/null || die "curl not found"
	install
	mkdir -p "$STATE"
	echo "=== start $(date -u +%FT%TZ)" >>"$LOGFILE"
	local t0=$SECONDS
	# Run from the state dir so nothing Azurite writes lands in the working tree.
	pid="$(
		cd "$STATE"
		nohup "$BIN" --blobHost "$HOST" --blobPort "$PORT" \
			--skipApiVersionCheck --disableTelemetry --loose \
			--inMemoryPersistence --extentMemoryLimit "${AZURITE_MEMORY_MB:-4096}" \
			</dev/null >>"$LOGFILE" 2>&1 9>&- &
		echo $!
	)"
	echo "$pid" >"$PIDFILE"
	local deadline=$((SECONDS + START_TIMEOUT))
	until ready; do
		if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
			log "azurite did not start; last log lines:"
			tail -n 40 "$LOGFILE" >&2 || true
			kill_wait "$pid"
			rm -f "$PIDFILE"
			die "azurite failed to start"
		fi
		sleep 0.3
	done
	log "azurite ready in $((SECONDS - t0)) s (pid $pid): http://$HOST:$PORT/$ACCOUNT"
}

cmd_stop() {
	local pid
	if ! pid="$(running)"; then
		rm -f "$PIDFILE"
		log "not running"
		return 0
	fi
	log "stopping azurite (pid $pid)"
	stop_pid "$pid" TERM 15
	rm -f "$PIDFILE"
	log "stopped"
}

cmd_status() {
	local pid
	if pid="$(running)" && ready; then
		echo "running (pid $pid), http://$HOST:$PORT/$ACCOUNT"
		return 0
	fi
	echo "not running"
	return 3
}

case "${1:-}" in
start) lock_state "$STATE" 300 && cmd_start ;;
stop) lock_state "$STATE" 300 && cmd_stop ;;
status) cmd_status ;;
env) print_env "IT_AZURITE_BLOB=http://$HOST:$PORT/$ACCOUNT" ;;
install) lock_state "$STATE" 300 && install ;;
*)
	echo "usage: $0 start|stop|status|env|install" >&2
	exit 2
	;;
esac
