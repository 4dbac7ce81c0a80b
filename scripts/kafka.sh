#!/usr/bin/env bash
# A local single-node Apache Kafka (KRaft, combined broker+controller) from the
# official jars on Maven Central, for tests and for trying tvm2kafka without Docker.
#
#   scripts/kafka.sh start    fetch jars (cached), make a test CA and broker cert, format
#                             storage (first time), start the broker, wait until it answers
#   scripts/kafka.sh stop     stop the broker started here (keeps its data)
#   scripts/kafka.sh status   exit 0 when running
#   scripts/kafka.sh env      print `export IT_...=...` lines for the integration tests
#   scripts/kafka.sh clean    stop and delete the broker's state (data, certs, logs)
#   scripts/kafka.sh jars     only fetch the jars into the cache
#
# Listeners (all on 127.0.0.1):
#   19092 PLAINTEXT
#   19093 CONTROLLER (KRaft, internal)
#   19094 SASL_SSL   mechanisms PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER; TLS by a test CA
#                    users: alice/alice-secret (SCRAM-SHA-512 and -256), bob/bob-secret (PLAIN);
#                    OAUTHBEARER: RS256 JWTs signed with the rig's key (oauth/key.pem, its JWKS
#                    in oauth/jwks.json), audience https://127.0.0.1, issuer
#                    https://sts.windows.net/<OAUTH_TENANT>/ (the Entra ID v1 form); sessions
#                    end when the token expires (connections.max.reauth.ms)
#
# Settings (environment):
#   TVM2KAFKA_CACHE    jar cache, default $HOME/.cache/tvm2kafka (jars in $TVM2KAFKA_CACHE/jars)
#   TVM2KAFKA_RIG_DIR  state root, default <repo>/.rig (this broker uses <root>/kafka)
#   KAFKA_HEAP_OPTS    default -Xms256m -Xmx1g
#   KAFKA_RIG_PORT     first of the three ports, default 19092 (a second rig beside the
#                      first needs its own TVM2KAFKA_RIG_DIR and ports)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_TAG=kafka.sh
# shellcheck source=scripts/lib.sh
source "$SCRIPT_DIR/lib.sh"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"
SCRIPT_PATH="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
POM="$SCRIPT_DIR/kafka/pom.xml"

CACHE="${TVM2KAFKA_CACHE:-$HOME/.cache/tvm2kafka}"
JARS="$CACHE/jars"
RIG_DIR="${TVM2KAFKA_RIG_DIR:-$REPO_DIR/.rig}"
STATE="$RIG_DIR/kafka"
DATA="$STATE/data"
TLS="$STATE/tls"
CONF="$STATE/server.properties"
LOG4J="$STATE/log4j2.properties"
LOGFILE="$STATE/broker.log"
PIDFILE="$STATE/broker.pid"

HOST=127.0.0.1
PORT_BASE="${KAFKA_RIG_PORT:-19092}"
PLAIN_PORT=$PORT_BASE
CONTROLLER_PORT=$((PORT_BASE + 1))
SASL_PORT=$((PORT_BASE + 2))
SCRAM_USER=alice
SCRAM_PASSWORD=alice-secret
PLAIN_USER=bob
PLAIN_PASSWORD=bob-secret
OAUTH="$STATE/oauth"
OAUTH_KID=tvm2kafka-rig
OAUTH_TENANT=5c0ffee0-7a1e-4d2b-9c3f-0a1b2c3d4e5f
OAUTH_ISSUER="https://sts.windows.net/$OAUTH_TENANT/"
OAUTH_AUDIENCE="https://$HOST"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-45}"

# ---------------------------------------------------------------- jars
jars_stamp() {
	# The cache is complete when the marker holds the hash of the pom that filled it.
	sha256sum "$POM" | cut -d' ' -f1
}

fetch_jars() {
	local want
	want="$(jars_stamp)"
	if [[ -f "$JARS/.complete" && "$(cat "$JARS/.complete")" == "$want" ]]; then
		return 0
	fi
	mkdir -p "$CACHE"
	exec 8>"$CACHE/.jars.lock"
	flock -w 600 8 || die "could not lock $CACHE/.jars.lock"
	if [[ -f "$JARS/.complete" && "$(cat "$JARS/.complete")" == "$want" ]]; then
		return 0 # filled by a concurrent caller
	fi
	command -v mvn >/dev/null || die "mvn not found: install Maven (apt-get install -y maven)"
	command -v java >/dev/null || die "java not found: install a JDK 17+"
	log "fetching Kafka jars with Maven into $JARS"
	local t0=$SECONDS tmp
	mkdir -p "$CACHE"
	tmp="$(mktemp -d "$CACHE/jars.tmp.XXXXXX")"
	if ! mvn -q -B -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
		cat "$tmp.log" >&2
		rm -rf "$tmp" "$tmp.log"
		die "Maven could not fetch the Kafka jars (its output is above)"
	fi
	rm -f "$tmp.log"
	ls "$tmp"/kafka_2.13-*.jar "$tmp"/kafka-tools-*.jar >/dev/null 2>&1 || {
		rm -rf "$tmp"
		die "Maven finished but the broker/tools jars are missing"
	}
	echo "$want" >"$tmp/.complete"
	rm -rf "$JARS"
	mv "$tmp" "$JARS"
	log "jars ready in $((SECONDS - t0)) s ($(ls "$JARS"/*.jar | wc -l) jars)"
}

# ---------------------------------------------------------------- TLS
make_certs() {
	[[ -f "$TLS/ca.pem" && -f "$TLS/broker-keystore.pem" ]] && return 0
	command -v openssl >/dev/null || die "openssl not found"
	log "creating test CA and broker certificate in $TLS"
	rm -rf "$TLS"
	mkdir -p "$TLS"
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
		-subj "/CN=tvm2kafka test CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-keyout "$TLS/ca-key.pem" -out "$TLS/ca.pem" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
		-keyout "$TLS/broker-key.pem" -out "$TLS/broker.csr" 2>/dev/null
	cat >"$TLS/broker.ext" <<-EOF
		basicConstraints=CA:FALSE
		keyUsage=critical,digitalSignature,keyEncipherment
		extendedKeyUsage=serverAuth
		subjectAltName=IP:127.0.0.1,DNS:localhost
	EOF
	openssl x509 -req -in "$TLS/broker.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca-key.pem" \
		-CAcreateserial -days 3650 -extfile "$TLS/broker.ext" -out "$TLS/broker.pem" 2>/dev/null
	# Kafka's PEM keystore: an unencrypted PKCS#8 key followed by the certificate chain.
	{
		openssl pkcs8 -topk8 -nocrypt -in "$TLS/broker-key.pem"
		cat "$TLS/broker.pem" "$TLS/ca.pem"
	} >"$TLS/broker-keystore.pem"
	chmod 600 "$TLS"/*-key.pem "$TLS/broker-keystore.pem"
}

# The OAUTHBEARER signing key and its JWKS, read by the broker from a file:
# the broker starts before any test, so no JWKS endpoint has to be up.
make_oauth_key() {
	[[ -f "$OAUTH/key.pem" && -f "$OAUTH/jwks.json" ]] && return 0
	command -v openssl >/dev/null || die "openssl not found"
	mkdir -p "$OAUTH"
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$OAUTH/key.pem" 2>/dev/null
	chmod 600 "$OAUTH/key.pem"
	local n
	n="$(openssl rsa -in "$OAUTH/key.pem" -noout -modulus | cut -d= -f2 | basenc --base16 -d | basenc --base64url -w0 | tr -d '=')"
	[[ -n "$n" ]] || die "could not read the OAUTHBEARER key's modulus"
	printf '{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"%s","n":"%s","e":"AQAB"}]}\n' \
		"$OAUTH_KID" "$n" >"$OAUTH/jwks.json"
}

# ---------------------------------------------------------------- config
write_config() {
	mkdir -p "$STATE" "$DATA"
	cat >"$CONF" <<-EOF
		# Generated by scripts/kafka.sh — edits are overwritten at the next start.
		process.roles=broker,controller
		node.id=1
		controller.quorum.bootstrap.servers=$HOST:$CONTROLLER_PORT
		listeners=PLAINTEXT://$HOST:$PLAIN_PORT,CONTROLLER://$HOST:$CONTROLLER_PORT,SASL_SSL://$HOST:$SASL_PORT
		advertised.listeners=PLAINTEXT://$HOST:$PLAIN_PORT,SASL_SSL://$HOST:$SASL_PORT
		listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
		controller.listener.names=CONTROLLER
		inter.broker.listener.name=PLAINTEXT
		log.dirs=$DATA

		$(kafka_defaults 1 1)

		# SASL_SSL listener
		sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER
		listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER
		listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$PLAIN_USER="$PLAIN_PASSWORD";
		listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
		listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
		listener.name.sasl_ssl.ssl.keystore.type=PEM
		listener.name.sasl_ssl.ssl.keystore.location=$TLS/broker-keystore.pem
		listener.name.sasl_ssl.ssl.client.auth=none
		listener.name.sasl_ssl.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;
		listener.name.sasl_ssl.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler
		listener.name.sasl_ssl.oauthbearer.connections.max.reauth.ms=3600000
		# Kafka 4.1's default validator (DefaultJwtValidator) checks no signature when the
		# handler is created by the broker: name the one that checks against the JWKS.
		sasl.oauthbearer.jwt.validator.class=org.apache.kafka.common.security.oauthbearer.BrokerJwtValidator
		sasl.oauthbearer.jwks.endpoint.url=file://$OAUTH/jwks.json
		sasl.oauthbearer.expected.audience=$OAUTH_AUDIENCE
		sasl.oauthbearer.expected.issuer=$OAUTH_ISSUER
	EOF
	kafka_log4j "$LOG4J" "$LOGFILE"
}

java_cmd() {
	kafka_jvm "${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}" "$LOG4J" "$STATE"
	"${KAFKA_JVM[@]}" "$@"
}

format_storage() {
	[[ -f "$DATA/meta.properties" ]] && return 0
	log "formatting KRaft storage in $DATA"
	local uuid
	uuid="$(java_cmd kafka.tools.StorageTool random-uuid 2>>"$LOGFILE" | tail -n1)"
	[[ -n "$uuid" ]] || die "StorageTool random-uuid failed; see $LOGFILE"
	java_cmd kafka.tools.StorageTool format --standalone -t "$uuid" -c "$CONF" \
		--add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$SCRAM_PASSWORD]" \
		--add-scram "SCRAM-SHA-256=[name=$SCRAM_USER,password=$SCRAM_PASSWORD]" \
		>>"$LOGFILE" 2>&1 || {
		tail -n 30 "$LOGFILE" >&2
		die "formatting storage failed"
	}
}

# ---------------------------------------------------------------- process
# running prints the broker's pid and succeeds when a broker of this state dir runs.
running() { find_running "$PIDFILE" "$CONF" "kafka.Kafka $CONF"; }

# ready succeeds when both client listeners accept connections and the broker
# answers a metadata request with itself as a registered broker.
ready() {
	port_open "$HOST" "$PLAIN_PORT" && port_open "$HOST" "$SASL_PORT" || return 1
	if command -v kcat >/dev/null; then
		[[ "$(brokers_seen "$HOST:$PLAIN_PORT")" == 1 ]]
	else
		started_in_log "$LOGFILE"
	fi
}

wait_ready() {
	local pid=$1 deadline=$((SECONDS + START_TIMEOUT))
	while ((SECONDS < deadline)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "broker process $pid exited during start; last log lines:"
			tail -n 60 "$LOGFILE" >&2 || true
			rm -f "$PIDFILE"
			return 1
		fi
		ready && return 0
		sleep 0.5
	done
	log "broker did not answer within ${START_TIMEOUT}s; last log lines:"
	tail -n 60 "$LOGFILE" >&2 || true
	return 1
}

cmd_start() {
	local pid
	if pid="$(running)"; then
		if wait_ready "$pid"; then
			log "already running (pid $pid)"
			return 0
		fi
		die "broker pid $pid is running but does not answer"
	fi
	if port_open "$HOST" "$PLAIN_PORT" || port_open "$HOST" "$SASL_PORT" || port_open "$HOST" "$CONTROLLER_PORT"; then
		die "a port of $PLAIN_PORT/$CONTROLLER_PORT/$SASL_PORT is taken by another process"
	fi
	fetch_jars
	make_certs
	make_oauth_key
	write_config
	format_storage
	local t0=$SECONDS
	log "starting broker (log: $LOGFILE)"
	echo "=== start $(date -u +%FT%TZ)" >>"$LOGFILE"
	kafka_jvm "${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}" "$LOG4J" "$STATE"
	nohup "${KAFKA_JVM[@]}" -Dorg.apache.kafka.sasl.oauthbearer.allowed.urls="file://$OAUTH/jwks.json" \
		kafka.Kafka "$CONF" </dev/null >>"$LOGFILE" 2>&1 8>&- 9>&- &
	pid=$!
	echo "$pid" >"$PIDFILE"
	wait_ready "$pid" || {
		kill_wait "$pid"
		rm -f "$PIDFILE"
		die "broker failed to start"
	}
	log "broker ready in $((SECONDS - t0)) s (pid $pid): PLAINTEXT $HOST:$PLAIN_PORT, SASL_SSL $HOST:$SASL_PORT"
}

cmd_stop() {
	local pid
	if ! pid="$(running)"; then
		rm -f "$PIDFILE"
		log "not running"
		return 0
	fi
	log "stopping broker (pid $pid)"
	stop_pid "$pid" TERM "$STOP_TIMEOUT"
	rm -f "$PIDFILE"
	log "stopped"
}

cmd_status() {
	local pid
	if pid="$(running)"; then
		if ready; then
			echo "running (pid $pid), PLAINTEXT $HOST:$PLAIN_PORT, SASL_SSL $HOST:$SASL_PORT"
			return 0
		fi
		echo "running (pid $pid) but not answering"
		return 1
	fi
	echo "not running"
	return 3
}

cmd_env() {
	print_env \
		"IT_KAFKA_BROKERS=$HOST:$PLAIN_PORT" \
		"IT_KAFKA_SASL_BROKERS=$HOST:$SASL_PORT" \
		"IT_KAFKA_CA_FILE=$TLS/ca.pem" \
		"IT_KAFKA_SCRAM_USER=$SCRAM_USER" \
		"IT_KAFKA_SCRAM_PASSWORD=$SCRAM_PASSWORD" \
		"IT_KAFKA_PLAIN_USER=$PLAIN_USER" \
		"IT_KAFKA_PLAIN_PASSWORD=$PLAIN_PASSWORD" \
		"IT_KAFKA_OAUTH_KEY_FILE=$OAUTH/key.pem" \
		"IT_KAFKA_OAUTH_KID=$OAUTH_KID" \
		"IT_KAFKA_OAUTH_ISSUER=$OAUTH_ISSUER" \
		"IT_KAFKA_OAUTH_AUDIENCE=$OAUTH_AUDIENCE" \
		"IT_KAFKA_JARS=$JARS" \
		"IT_KAFKA_SCRIPT=$SCRIPT_PATH"
}

cmd_clean() {
	cmd_stop
	rm -rf "$STATE"
	log "removed $STATE"
}

case "${1:-}" in
start) lock_state "$STATE" 300 && cmd_start ;;
stop) lock_state "$STATE" 300 && cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
clean) lock_state "$STATE" 300 && cmd_clean ;;
jars) fetch_jars ;;
*)
	echo "usage: $0 start|stop|status|env|clean|jars" >&2
	exit 2
	;;
esac
