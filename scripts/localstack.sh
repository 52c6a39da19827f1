#!/usr/bin/env bash
# Install, start, wait for and stop LocalStack on the host, without Docker.
#
#   scripts/localstack.sh install   # pinned LocalStack in its own virtualenv (never the project's)
#   scripts/localstack.sh start     # start in the background and wait until healthy
#   scripts/localstack.sh stop      # stop the one this script started
#   scripts/localstack.sh status    # exit 0 when an instance answers on the endpoint
#
# Settings (environment): LOCALSTACK_VENV (where the virtualenv lives),
# LOCALSTACK_HOME (pid file, logs and state), LOCALSTACK_PORT (default 4566),
# LOCALSTACK_SERVICES (replaces the default list), LOCALSTACK_EXTRA_SERVICES (added to it, e.g.
# cloudwatch for a CDK deployment with alarms: it is off by default because LocalStack's CloudWatch
# doubles the S3 -> SQS event latency, measured with bench/reload.py).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${LOCALSTACK_VENV:-$HOME/.cache/model-reloader/localstack-4.13.1}
home=${LOCALSTACK_HOME:-$here/.localstack}
port=${LOCALSTACK_PORT:-4566}
python=${PYTHON:-python3}
endpoint="http://127.0.0.1:$port"

# Later releases need Python 3.12, or break against newer versions of these four.
pins=("localstack-core[base-runtime,runtime]==4.13.1" "cbor2<5.8" "cryptography<45" "pyopenssl<25" "service_identity<25")

healthy() { curl -fsS -m 2 "$endpoint/_localstack/health" >/dev/null 2>&1; }

install() {
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import localstack.runtime.main' 2>/dev/null; then
    return 0
  fi
  echo "localstack: installing into $venv" >&2
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet "${pins[@]}"
}

start() {
  if healthy; then echo "localstack: already answering on $endpoint" >&2; return 0; fi
  install
  mkdir -p "$home"
  echo "localstack: starting on $endpoint (log: $home/localstack.log)" >&2
  # setsid: its own process group, so stop can end LocalStack and all its children.
  GATEWAY_LISTEN="127.0.0.1:$port" \
  SERVICES="${LOCALSTACK_SERVICES:-s3,sqs,sns,sts,iam,cloudformation,ssm,events,lambda}${LOCALSTACK_EXTRA_SERVICES:+,$LOCALSTACK_EXTRA_SERVICES}" \
  LOCALSTACK_VOLUME_DIR="$home/volume" FILESYSTEM_ROOT="$home/fs" \
  DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 \
    setsid "$venv/bin/python" -m localstack.runtime.main >"$home/localstack.log" 2>&1 < /dev/null &
  echo $! >"$home/localstack.pid"
  for _ in $(seq 1 120); do
    if healthy; then echo "localstack: ready" >&2; return 0; fi
    if ! kill -0 "$(cat "$home/localstack.pid")" 2>/dev/null; then
      echo "localstack: exited during start; last lines of $home/localstack.log:" >&2
      tail -n 30 "$home/localstack.log" >&2; return 1
    fi
    sleep 0.5
  done
  echo "localstack: not healthy after 60 s; see $home/localstack.log" >&2
  return 1
}

stop() {
  local pidfile="$home/localstack.pid"
  [ -f "$pidfile" ] || return 0
  local pid; pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) healthy ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
