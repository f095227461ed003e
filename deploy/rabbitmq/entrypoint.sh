#!/bin/sh
# The bundled broker's entrypoint: the first user, its password and vhost from the
# environment into rabbitmq.conf, then RabbitMQ in the foreground, its log on stdout.
#
#   RABBITMQ_DEFAULT_USER, RABBITMQ_DEFAULT_PASS  required: peers reach this broker, so
#                                                 there is no guest/guest to fall back on
#   RABBITMQ_DEFAULT_VHOST                        default /
#   RABBITMQ_NODE_PORT                            AMQP, default 5672; the Erlang distribution
#                                                 listens on it + 20000 (or RABBITMQ_DIST_PORT),
#                                                 on loopback
#   RABBITMQ_NODENAME                             default fedweave@localhost; brokers that
#                                                 share a host's network each need their own
#
# As with RabbitMQ's own default_user, the user and vhost are made when the node starts
# on an empty data folder; later starts keep the users it has.
set -eu

fail() { echo "fedweave-rabbitmq: $*" >&2; exit 2; }

user=${RABBITMQ_DEFAULT_USER:-}
pass=${RABBITMQ_DEFAULT_PASS:-}
vhost=${RABBITMQ_DEFAULT_VHOST:-/}
[ -n "$user" ] || fail "RABBITMQ_DEFAULT_USER is not set (the broker's first user)"
[ -n "$pass" ] || fail "RABBITMQ_DEFAULT_PASS is not set (peers reach this broker: it has no default password)"
case "$RABBITMQ_NODE_PORT" in
  ''|*[!0-9]*) fail "RABBITMQ_NODE_PORT=$RABBITMQ_NODE_PORT is not a port number" ;;
esac
[ "$RABBITMQ_NODE_PORT" -ge 1 ] && [ "$RABBITMQ_NODE_PORT" -le 65535 ] \
  || fail "RABBITMQ_NODE_PORT=$RABBITMQ_NODE_PORT is not a port number"
[ -n "${RABBITMQ_DIST_PORT:-}" ] || [ "$RABBITMQ_NODE_PORT" -le 45535 ] \
  || fail "RABBITMQ_NODE_PORT=$RABBITMQ_NODE_PORT: over 45535, set RABBITMQ_DIST_PORT (else it + 20000)"
# rabbitmq.conf takes a value to the end of its line: one that has a newline, a '#' or
# spaces at an end would be read as something else
for var in RABBITMQ_DEFAULT_USER RABBITMQ_DEFAULT_PASS RABBITMQ_DEFAULT_VHOST; do
  eval "value=\${$var:-/}"
  case "$value" in
    *'
'*|*'#'*|' '*|*' ') fail "$var: no newline, '#' or leading or trailing space" ;;
  esac
done

umask 077
cat >"$RABBITMQ_CONFIG_FILE" <<CONF
# written by fedweave-rabbitmq at each start
default_user = $user
default_pass = $pass
default_vhost = $vhost
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
log.console = true
log.console.level = info
log.console.use_colors = off
log.file = false
CONF
cd "$HOME"
exec /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
