#!/usr/bin/env bash
# Starts and stops a private MinIO on 127.0.0.1 for tests, demos and
# benchmarks. State (data, PID, port, log) lives in $S3BLK_MINIO_DIR.
#
#   scripts/minio.sh start   # prints export lines for the AWS environment
#   scripts/minio.sh stop    # stops it by PID and removes its data
#   scripts/minio.sh down    # kills it, keeping its data and port (outage tests)
#   scripts/minio.sh up      # starts it again after `down`, same data and port
set -euo pipefail

DIR=${S3BLK_MINIO_DIR:-${TMPDIR:-/tmp}/s3blk-minio}
USER_KEY=s3blktest
SECRET_KEY=s3blktestsecret
MINIO=$(go env GOPATH)/bin/minio

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port picks a port below the kernel's ephemeral range, so that the
# local end of some outgoing connection cannot already hold it (a connect
# test does not see those, and MinIO's bind would fail), nor take it while
# MinIO is down for an outage test.
free_port() {
	local p lo=10000 hi
	hi=$(awk '{ print $1 - 1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32767)
	((hi > lo + 1000)) || hi=$((lo + 20000))
	for _ in $(seq 1 200); do
		p=$((lo + RANDOM % (hi - lo)))
		port_in_use "$p" || { echo "$p"; return; }
	done
	echo "minio.sh: no free port" >&2
	exit 1
}

env_lines() {
	cat <<EOT
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$(cat "$DIR/port")
export AWS_ACCESS_KEY_ID=$USER_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export S3BLK_MINIO_PID=$(cat "$DIR/pid")
EOT
}

# launch starts MinIO on port $1 with the data in $DIR and waits until it is
# live; then prints the environment.
launch() {
	local port=$1 cport
	cport=$(free_port)
	MINIO_ROOT_USER=$USER_KEY MINIO_ROOT_PASSWORD=$SECRET_KEY MINIO_BROWSER=off \
		setsid "$MINIO" server --quiet --address "127.0.0.1:$port" --console-address "127.0.0.1:$cport" \
		"$DIR/data" >>"$DIR/log" 2>&1 </dev/null &
	echo $! >"$DIR/pid"
	echo "$port" >"$DIR/port"
	for _ in $(seq 1 300); do
		if curl -sf "http://127.0.0.1:$port/minio/health/live" >/dev/null 2>&1; then
			env_lines
			return 0
		fi
		kill -0 "$(cat "$DIR/pid")" 2>/dev/null || break
		sleep 0.1
	done
	kill_minio KILL
	return 1
}

failed() {
	echo "minio.sh: MinIO did not start; its log:" >&2
	cat "$DIR/log" >&2
	exit 1
}

# kill_minio stops the MinIO whose PID is in $DIR/pid (with signal $1 first).
kill_minio() {
	[ -f "$DIR/pid" ] || return 0
	local pid
	pid=$(cat "$DIR/pid")
	kill "-$1" "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null || true
}

case "${1:-}" in
start)
	if [ -f "$DIR/pid" ] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null; then
		env_lines
		exit 0
	fi
	rm -rf "$DIR"
	mkdir -p "$DIR/data"
	# Another MinIO starting at the same moment may take the same free
	# port: then try another.
	for _ in 1 2 3; do
		launch "$(free_port)" && exit 0
		grep -q "already in use" "$DIR/log" || break
	done
	failed
	;;
stop)
	kill_minio TERM
	rm -rf "$DIR"
	;;
down)
	kill_minio KILL
	;;
up)
	[ -f "$DIR/port" ] || { echo "minio.sh: no MinIO state in $DIR" >&2; exit 1; }
	launch "$(cat "$DIR/port")" >/dev/null || failed
	;;
env)
	env_lines
	;;
*)
	echo "usage: $0 start|stop|down|up|env" >&2
	exit 2
	;;
esac
