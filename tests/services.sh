#!/usr/bin/env bash
# Start the services the test suite talks to, if they are not running: RabbitMQ
# (127.0.0.1:5672, guest/guest). Pulsar (pulsar-lite), the Hive Thrift server and the
# WebHDFS double are started by the tests' own fixtures.
set -euo pipefail

rabbit_up() { rabbitmq-diagnostics -q check_running >/dev/null 2>&1; }

if ! command -v rabbitmqctl >/dev/null 2>&1; then
  echo "services: rabbitmq-server is not installed (apt-get install rabbitmq-server)" >&2
  exit 1
fi
if ! rabbit_up; then
  if rabbitmqctl -q status >/dev/null 2>&1; then
    echo "services: RabbitMQ node up but its app is stopped: start_app" >&2
    rabbitmqctl -q start_app
  else
    echo "services: starting RabbitMQ" >&2
    rabbitmq-server -detached
  fi
  for _ in $(seq 1 60); do rabbit_up && break; sleep 1; done
  rabbit_up || { echo "services: RabbitMQ did not come up in 60 s" >&2; exit 1; }
fi
echo "services: RabbitMQ running" >&2
