#!/usr/bin/env bash
# A local, real Apache Kafka broker (KRaft, one combined broker+controller) for development and CI.
#
#   scripts/kafka.sh start    assemble the jars once (Maven Central), format storage once, start, wait for metadata
#   scripts/kafka.sh stop     stop it cleanly (SIGTERM, then SIGKILL after KAFKA_STOP_TIMEOUT_S)
#   scripts/kafka.sh status   exit 0 when it answers a metadata request
#   scripts/kafka.sh reset    stop it and delete its data folder
#
# Settings (environment):
#   KAFKA_PORT             client listener on 127.0.0.1 (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener (default KAFKA_PORT + 1)
#   KAFKA_VERSION          pinned broker version (default 4.1.1, the line @platformatic/kafka 2.x tests against)
#   BANKSTREAM_HOME        cache folder for jars and data (default ~/.bankstream)
#   KAFKA_HEAP             JVM heap (default 1g)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
home="${BANKSTREAM_HOME:-$HOME/.bankstream}"
version="${KAFKA_VERSION:-4.1.1}"
port="${KAFKA_PORT:-9092}"
controller_port="${KAFKA_CONTROLLER_PORT:-$((port + 1))}"
heap="${KAFKA_HEAP:-1g}"
stop_timeout_s="${KAFKA_STOP_TIMEOUT_S:-30}"
start_timeout_s="${KAFKA_START_TIMEOUT_S:-90}"
libs="$home/kafka-$version/libs"
data="$home/kafka-data/$port"
pid_file="$data/kafka.pid"
log="$data/kafka.out"

case "$port$controller_port" in *[!0-9]*) echo "kafka.sh: KAFKA_PORT and KAFKA_CONTROLLER_PORT must be numbers" >&2; exit 2;; esac

log_msg() { echo "kafka.sh: $*" >&2; }

assemble() {
  if [ -f "$libs/.complete" ]; then return; fi
  command -v java >/dev/null || { log_msg "java (17+) is required to run the local broker; or use docker-compose.yml"; exit 1; }
  command -v mvn >/dev/null || { log_msg "maven is required to fetch the broker jars from Maven Central"; exit 1; }
  log_msg "fetching Apache Kafka $version jars into $libs (once)"
  rm -rf "$libs"
  mvn -q -B -f "$here/kafka/pom.xml" -Dkafka.version="$version" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs" >&2
  touch "$libs/.complete"
}

java_tool() { java -Xmx256m -cp "$libs/*" -Dlog4j2.configurationFile="$data/log4j2.xml" "$@"; }

answers_metadata() {
  # ClusterTool sends a DescribeCluster (metadata) request through the Java AdminClient.
  timeout 20 java -Xmx128m -cp "$libs/*" -Dlog4j2.configurationFile="$data/log4j2.xml" \
    org.apache.kafka.tools.ClusterTool cluster-id --bootstrap-server "127.0.0.1:$port" >/dev/null 2>&1
}

running_pid() {
  if [ -f "$pid_file" ]; then
    local pid; pid="$(cat "$pid_file")"
    if kill -0 "$pid" 2>/dev/null; then echo "$pid"; return 0; fi
  fi
  return 1
}

write_config() {
  mkdir -p "$data/logs"
  cat > "$data/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$data/logs
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=12
group.initial.rebalance.delay.ms=0
transaction.max.timeout.ms=900000
log.retention.hours=168
log.cleaner.enable=true
PROPS
  cat > "$data/log4j2.xml" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <File name="file" fileName="$data/server.log" append="true">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Logger name="kafka" level="INFO"/>
    <Logger name="org.apache.kafka" level="INFO"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Root level="WARN"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
XML
}

start() {
  assemble
  if pid="$(running_pid)"; then
    log_msg "already running (pid $pid) on 127.0.0.1:$port"
    return 0
  fi
  write_config
  if [ ! -f "$data/logs/meta.properties" ]; then
    local cluster_id; cluster_id="$(java_tool kafka.tools.StorageTool random-uuid)"
    java_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$data/server.properties" --ignore-formatted >/dev/null
    log_msg "formatted KRaft storage in $data/logs (cluster $cluster_id)"
  fi
  if answers_metadata; then
    log_msg "something else already answers on 127.0.0.1:$port; not starting a second broker"
    return 1
  fi
  log_msg "starting Kafka $version on 127.0.0.1:$port (log: $data/server.log)"
  setsid nohup java -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$data/log4j2.xml" -Dkafka.logs.dir="$data" \
    -cp "$libs/*" kafka.Kafka "$data/server.properties" >"$log" 2>&1 < /dev/null &
  echo $! > "$pid_file"
  local deadline=$((SECONDS + start_timeout_s))
  until answers_metadata; do
    if ! running_pid >/dev/null; then
      log_msg "broker exited during start-up; last lines of $log and $data/server.log:"
      tail -n 20 "$log" "$data/server.log" >&2 || true
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then log_msg "no metadata answer within ${start_timeout_s}s"; return 1; fi
    sleep 1
  done
  log_msg "ready on 127.0.0.1:$port (pid $(cat "$pid_file"))"
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then log_msg "not running"; rm -f "$pid_file"; return 0; fi
  kill -TERM "$pid"
  local deadline=$((SECONDS + stop_timeout_s))
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then log_msg "did not stop in ${stop_timeout_s}s; killing"; kill -KILL "$pid" || true; break; fi
    sleep 0.5
  done
  rm -f "$pid_file"
  log_msg "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if answers_metadata; then log_msg "up on 127.0.0.1:$port"; else log_msg "down on 127.0.0.1:$port"; exit 1; fi ;;
  reset) stop; rm -rf "$data"; log_msg "deleted $data" ;;
  *) echo "usage: $0 start|stop|status|reset" >&2; exit 2 ;;
esac
