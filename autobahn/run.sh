#!/usr/bin/env bash
# Runs the Autobahn|Testsuite (in Docker) against wsforge and grades the
# reports. Usage:
#
#   autobahn/run.sh [server|client|all]
#
#   server  the suite's fuzzingclient tests our echo server (autobahn/server)
#   client  the suite's fuzzingserver tests our client (autobahn/client)
#   all     both, one after the other (the default)
#
# Reports land in autobahn/reports/{server,client}/index.html. The exit
# status is non-zero when any case is not OK or INFORMATIONAL.
#
# Both sides use 127.0.0.1:9001 with the container on the host network,
# which needs Docker on Linux (or a Docker Desktop with host networking).
set -euo pipefail

usage() {
	echo "usage: $0 [server|client|all]" >&2
	exit 2
}

[[ $# -le 1 ]] || usage
mode=${1:-all}
case "$mode" in
server | client | all) ;;
*) usage ;;
esac

# Everything below runs from the repository root, wherever we were called from.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

image=${AUTOBAHN_IMAGE:-crossbario/autobahn-testsuite}
# Must match the URLs in autobahn/config/*.json.
host=127.0.0.1
port=9001
agent=wsforge

if ! command -v docker >/dev/null 2>&1; then
	echo "run.sh: the real Autobahn|Testsuite runs in Docker, and docker is not installed." >&2
	echo "run.sh: install Docker (https://docs.docker.com/get-docker/) and run this script again." >&2
	exit 1
fi
if ! docker info >/dev/null 2>&1; then
	echo "run.sh: the real Autobahn|Testsuite runs in Docker, and the Docker daemon is not reachable ('docker info' failed)." >&2
	echo "run.sh: start the daemon (or fix permissions on its socket) and run this script again." >&2
	exit 1
fi

tmp=$(mktemp -d)
server_pid=
container=
client_failed=0

# shellcheck disable=SC2317 # only reached through the trap below
cleanup() {
	if [[ -n $server_pid ]]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	if [[ -n $container ]]; then
		docker rm -f "$container" >/dev/null 2>&1 || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_open() {
	(exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

# wait_for_port NAME CHECK...: waits until something accepts connections on
# $host:$port, giving up after about a minute or as soon as CHECK (a command
# telling whether the process we started is still alive) fails.
wait_for_port() {
	local name=$1 i
	shift
	for ((i = 0; i < 60; i++)); do
		if port_open; then
			return 0
		fi
		if ! "$@"; then
			echo "run.sh: $name exited before listening on $host:$port" >&2
			return 1
		fi
		sleep 1
	done
	echo "run.sh: $name did not listen on $host:$port within 60s" >&2
	return 1
}

# Liveness checks for wait_for_port, which calls them indirectly.
# shellcheck disable=SC2317
server_alive() {
	kill -0 "$server_pid" 2>/dev/null
}

# shellcheck disable=SC2317
container_running() {
	[[ $(docker inspect -f '{{.State.Running}}' "$container" 2>/dev/null) == true ]]
}

ensure_port_free() {
	if port_open; then
		echo "run.sh: something is already listening on $host:$port; stop it first" >&2
		exit 1
	fi
}

# expect_fresh_report SIDE: fails unless this run wrote the side's index.json,
# so that a stale report from an earlier run is never graded.
expect_fresh_report() {
	local index=autobahn/reports/$1/index.json
	if [[ ! -f $index || ! $index -nt $tmp/started ]]; then
		echo "run.sh: the suite wrote no new $index" >&2
		exit 1
	fi
}

echo "==> building the test programs"
go build -o "$tmp/server" ./autobahn/server
go build -o "$tmp/client" ./autobahn/client
mkdir -p autobahn/reports
touch "$tmp/started"

docker_volumes=(-v "$root/autobahn/config:/config:ro" -v "$root/autobahn/reports:/reports")

test_server() {
	echo "==> fuzzingclient: the suite tests our server"
	ensure_port_free
	"$tmp/server" -addr "$host:$port" &
	server_pid=$!
	wait_for_port "our echo server" server_alive

	container=wsforge-autobahn-fuzzingclient-$$
	docker run --rm --name "$container" --network host "${docker_volumes[@]}" \
		"$image" wstest -m fuzzingclient -s /config/fuzzingclient.json
	container=

	kill "$server_pid"
	wait "$server_pid" 2>/dev/null || true
	server_pid=
	expect_fresh_report server
}

test_client() {
	echo "==> fuzzingserver: the suite tests our client"
	ensure_port_free
	container=wsforge-autobahn-fuzzingserver-$$
	docker run -d --name "$container" --network host "${docker_volumes[@]}" \
		"$image" wstest -m fuzzingserver -s /config/fuzzingserver.json >/dev/null
	if ! wait_for_port "the fuzzingserver" container_running; then
		docker logs "$container" >&2 || true
		exit 1
	fi

	local status=0
	"$tmp/client" -url "ws://$host:$port" -agent "$agent" || status=$?

	docker rm -f "$container" >/dev/null
	container=
	if [[ $status -ne 0 ]]; then
		# Grade whatever report it got the suite to write, but fail the run.
		echo "run.sh: the client failed (exit $status)" >&2
		client_failed=1
	fi
	expect_fresh_report client
}

sides=()
case "$mode" in
server) sides=(server) ;;
client) sides=(client) ;;
all) sides=(server client) ;;
esac

for side in "${sides[@]}"; do
	case "$side" in
	server) test_server ;;
	client) test_client ;;
	esac
done

status=$client_failed
for side in "${sides[@]}"; do
	echo "==> grading autobahn/reports/$side/index.json"
	go run ./autobahn/check "autobahn/reports/$side/index.json" || status=1
done
for side in "${sides[@]}"; do
	echo "report: autobahn/reports/$side/index.html"
done
exit "$status"
