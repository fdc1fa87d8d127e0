#!/usr/bin/env bash
# A real Apache Kafka broker (KRaft, single node, 127.0.0.1) for the tests.
#   scripts/kafka.sh install          resolve the jars with Maven (the repositories its own settings
#                                     name, Maven Central by default) into the cache
#   scripts/kafka.sh start DIR        start a broker with its data in DIR; prints "BOOTSTRAP=host:port"
#   scripts/kafka.sh stop DIR         stop the broker started with DIR
#   scripts/kafka.sh restart DIR      stop it and start it again on the same port and data
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")"
libs="$TRACEJOIN_CACHE/kafka-$version/libs"

install() {
  if [ -f "$libs/.complete" ]; then return 0; fi
  log "kafka: resolving org.apache.kafka:kafka_2.13:$version with Maven (its configured repositories)"
  mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$libs" -DincludeScope=runtime >&2
  touch "$libs/.complete"
}

start() {
  local dir="$1"; install
  mkdir -p "$dir"
  local port ctl; port="$(free_port)"; ctl="$(free_port)"
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$ctl
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$ctl
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
PROPS
  cat > "$dir/log4j2.yaml" <<'L4J'
Configuration:
  Appenders:
    Console: { name: STDOUT, PatternLayout: { pattern: "[%d] %p %m (%c)%n" } }
  Loggers:
    Root: { level: WARN, AppenderRef: [ { ref: STDOUT } ] }
L4J
  local java_opts=(-Xmx512m -Xms128m -XX:+UseG1GC -Djava.awt.headless=true
                   -Dlog4j2.configurationFile="$dir/log4j2.yaml" -cp "$libs/*")
  java "${java_opts[@]}" kafka.tools.StorageTool format -t "$(python3 -c 'import uuid,base64;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')" \
      -c "$dir/server.properties" --standalone >"$dir/format.log" 2>&1
  echo "$port" > "$dir/port"
  launch "$dir"
}

# Runs the broker of an already formatted DIR and waits until it listens.
launch() {
  local dir="$1" port; port="$(cat "$dir/port")"
  local java_opts=(-Xmx512m -Xms128m -XX:+UseG1GC -Djava.awt.headless=true
                   -Dlog4j2.configurationFile="$dir/log4j2.yaml" -cp "$libs/*")
  daemon_start "$dir" broker java "${java_opts[@]}" kafka.Kafka "$dir/server.properties"
  daemon_ready "$dir" broker 90 port_open "$port"
  echo "BOOTSTRAP=127.0.0.1:$port"
}

stop() { daemon_stop "$1" broker 10; }

case "${1:-}" in
  install) install ;;
  start) start "${2:?data dir}" ;;
  stop) stop "${2:?data dir}" ;;
  # Stop, then start the same broker again (same port, same data): a broker restart.
  restart) stop "${2:?data dir}"; launch "$2" ;;
  *) echo "usage: $0 install | start DIR | stop DIR | restart DIR" >&2; exit 2 ;;
esac
