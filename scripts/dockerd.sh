#!/usr/bin/env bash
# Start or stop a private Docker engine for the project (tests, local runs).
#   scripts/dockerd.sh start DIR   -> prints the DOCKER_HOST to export
#   scripts/dockerd.sh stop DIR
# Always --bridge=none --iptables=false: no bridge, no firewall rules on this machine;
# containers run with --network none anyway.
set -euo pipefail
cmd="${1:?start|stop}"; dir="$(realpath -m "${2:?state dir}")"
sock="$dir/docker.sock"
case "$cmd" in
  start)
    mkdir -p "$dir"
    if [ -S "$sock" ] && DOCKER_HOST="unix://$sock" docker info >/dev/null 2>&1; then
      echo "unix://$sock"; exit 0
    fi
    nohup dockerd --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
      --data-root "$dir/root" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
      -H "unix://$sock" >"$dir/dockerd.log" 2>&1 &
    for _ in $(seq 1 60); do
      DOCKER_HOST="unix://$sock" docker info >/dev/null 2>&1 && { echo "unix://$sock"; exit 0; }
      sleep 0.5
    done
    echo "dockerd did not start; see $dir/dockerd.log" >&2; tail -20 "$dir/dockerd.log" >&2; exit 1 ;;
  stop)
    if [ -f "$dir/dockerd.pid" ]; then
      pid="$(cat "$dir/dockerd.pid")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
    fi ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
