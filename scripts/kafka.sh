#!/usr/bin/env bash
# A local, real Apache Kafka (KRaft) for development and CI: by default one combined broker+controller
# with a PLAINTEXT listener; optionally TLS, SASL/SCRAM with ACLs, and a three-node cluster.
#
#   scripts/kafka.sh start          assemble the jars once (Maven Central), generate certificates and
#                                   users once, format storage once, start every node, wait for metadata
#   scripts/kafka.sh stop           stop every node cleanly (SIGTERM, then SIGKILL after KAFKA_STOP_TIMEOUT_S)
#   scripts/kafka.sh status         exit 0 when every node answers a metadata request
#   scripts/kafka.sh reset          stop and delete the data folder (certificates and users included)
#   scripts/kafka.sh env            print the client settings for bankstream (eval "$(scripts/kafka.sh env)")
#   scripts/kafka.sh kill-node N    SIGKILL node N (1-based; fault tests), no clean shutdown
#   scripts/kafka.sh start-node N   start node N again (after kill-node)
#   scripts/kafka.sh add-user NAME [PASSWORD]   create or update a SCRAM user (SASL mode, at runtime)
#   scripts/kafka.sh tool acls|configs|topics|cluster ARGS...
#                                   run a Kafka CLI tool (kafka-acls, kafka-configs, kafka-topics,
#                                   kafka-cluster) against this cluster, as the admin super user
#
# Settings (environment; the defaults give the plain single node, unchanged):
#   KAFKA_PORT             client listener of node 1 on 127.0.0.1 (default 9092); node N uses KAFKA_PORT+N-1
#   KAFKA_CONTROLLER_PORT  KRaft controller listener of node 1 (default KAFKA_PORT + KAFKA_NODES); node N +N-1
#   KAFKA_NODES            1 (default) or 3: three combined broker+controller nodes on 127.0.0.1, each with
#                          its own ports and folder (KAFKA_DATA_DIR/node-N); internal topics get replication
#                          factor 3 and min.insync.replicas 2. Run bankstream with REPLICATION_FACTOR=3
#                          MIN_INSYNC_REPLICAS=2 (what Kafka Streams recommends for exactly-once).
#   KAFKA_TLS              1: the client listener speaks TLS. A CA, a broker certificate (SAN IP:127.0.0.1,
#                          DNS:localhost) and a client certificate are generated with openssl and keytool
#                          into KAFKA_DATA_DIR/tls (ca.pem, broker.p12, truststore.p12, client.pem, client.key).
#   KAFKA_TLS_CLIENT_AUTH  none (default), requested or required: whether the broker asks for client certificates
#   KAFKA_SASL             scram: the client listener needs SASL (SASL_SSL with KAFKA_TLS=1, else SASL_PLAINTEXT)
#                          with SCRAM-SHA-512 and SCRAM-SHA-256; plain: SASL/PLAIN; "scram,plain": both.
#                          Turns on the StandardAuthorizer with ACLs (allow.everyone.if.no.acl.found=false);
#                          the super user is "admin" (password in KAFKA_DATA_DIR/sasl/admin.password).
#                          The controller listener uses SASL/PLAIN with the admin user.
#   KAFKA_SASL_USERS       users created at format time (kafka-storage format --add-scram), "name[:password],..."
#                          (default "bankstream"; a missing password is generated). Passwords are written to
#                          KAFKA_DATA_DIR/sasl/<name>.password (mode 600). Users get no ACLs: grant them
#                          (docs/security.md, `bankstream acls print`).
#   KAFKA_DATA_DIR         data folder (default BANKSTREAM_HOME/kafka-data/KAFKA_PORT); the mode it was
#                          formatted for is recorded there and a start in another mode is refused (reset first)
#   KAFKA_VERSION          pinned broker version (default 4.1.1, the line @platformatic/kafka 2.x tests against)
#   BANKSTREAM_HOME        cache folder for jars and data (default ~/.bankstream)
#   KAFKA_HEAP             JVM heap per node (default 1g; 512m per node with KAFKA_NODES=3)
#   KAFKA_START_TIMEOUT_S  how long start waits for metadata answers (default 90)
#   KAFKA_STOP_TIMEOUT_S   how long stop waits before SIGKILL (default 30)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
home="${BANKSTREAM_HOME:-$HOME/.bankstream}"
version="${KAFKA_VERSION:-4.1.1}"
port="${KAFKA_PORT:-9092}"
nodes="${KAFKA_NODES:-1}"
tls="${KAFKA_TLS:-0}"
sasl="${KAFKA_SASL:-}"
client_auth="${KAFKA_TLS_CLIENT_AUTH:-none}"
controller_port="${KAFKA_CONTROLLER_PORT:-$((port + nodes))}"
stop_timeout_s="${KAFKA_STOP_TIMEOUT_S:-30}"
start_timeout_s="${KAFKA_START_TIMEOUT_S:-90}"
libs="$home/kafka-$version/libs"
data="${KAFKA_DATA_DIR:-$home/kafka-data/$port}"

log_msg() { echo "kafka.sh: $*" >&2; }
fail() { log_msg "$*"; exit 2; }

case "$port$controller_port$nodes" in *[!0-9]*) fail "KAFKA_PORT, KAFKA_CONTROLLER_PORT and KAFKA_NODES must be numbers";; esac
case "$nodes" in 1|3) ;; *) fail "KAFKA_NODES must be 1 or 3, got $nodes";; esac
case "$tls" in 0|1) ;; *) fail "KAFKA_TLS must be 0 or 1, got $tls";; esac
case "$client_auth" in none|requested|required) ;; *) fail "KAFKA_TLS_CLIENT_AUTH must be none, requested or required";; esac
sasl_scram=0; sasl_plain=0
for mechanism in ${sasl//,/ }; do
  case "$mechanism" in scram) sasl_scram=1 ;; plain) sasl_plain=1 ;; *) fail "KAFKA_SASL must list scram and/or plain, got $sasl";; esac
done
sasl_on=$((sasl_scram || sasl_plain))
if [ "$nodes" = 1 ]; then heap="${KAFKA_HEAP:-1g}"; else heap="${KAFKA_HEAP:-512m}"; fi

# The client listener's security protocol, as Kafka (and bankstream's KAFKA_SECURITY_PROTOCOL) names it.
if [ "$sasl_on" = 1 ] && [ "$tls" = 1 ]; then protocol=SASL_SSL
elif [ "$sasl_on" = 1 ]; then protocol=SASL_PLAINTEXT
elif [ "$tls" = 1 ]; then protocol=SSL
else protocol=PLAINTEXT; fi
secure=$(( tls || sasl_on ))
mode="nodes=$nodes protocol=$protocol sasl=$sasl client_auth=$client_auth"

tls_dir="$data/tls"
sasl_dir="$data/sasl"
admin_props="$data/admin-client.properties"

node_dir() { if [ "$nodes" = 1 ]; then echo "$data"; else echo "$data/node-$1"; fi; }
node_port() { echo $((port + $1 - 1)); }
node_controller_port() { echo $((controller_port + $1 - 1)); }
all_nodes() { seq 1 "$nodes"; }
bootstrap() { local out="" i; for i in $(all_nodes); do out="$out${out:+,}127.0.0.1:$(node_port "$i")"; done; echo "$out"; }
store_password() { cat "$tls_dir/store.password"; }
admin_password() { cat "$sasl_dir/admin.password"; }
random_secret() { openssl rand -hex 16; }

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

# Java tools log through the first node's log4j2 configuration (to its server.log, never the terminal).
java_tool() { java -Xmx256m -cp "$libs/*" -Dlog4j2.configurationFile="$(node_dir 1)/log4j2.xml" "$@"; }

# A closed port answers at once; the Java AdminClient would retry against it until `timeout` kills it.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

answers_metadata() {
  # ClusterTool sends a DescribeCluster (metadata) request through the Java AdminClient.
  port_open "$(node_port "$1")" || return 1
  local config=()
  if [ "$secure" = 1 ]; then config=(--config "$admin_props"); fi
  timeout 20 java -Xmx128m -cp "$libs/*" -Dlog4j2.configurationFile="$(node_dir 1)/log4j2.xml" \
    org.apache.kafka.tools.ClusterTool cluster-id --bootstrap-server "127.0.0.1:$(node_port "$1")" "${config[@]}" >/dev/null 2>&1
}

running_pid() {
  local pid_file; pid_file="$(node_dir "$1")/kafka.pid"
  if [ -f "$pid_file" ]; then
    local pid; pid="$(cat "$pid_file")"
    if kill -0 "$pid" 2>/dev/null; then echo "$pid"; return 0; fi
  fi
  return 1
}

# ---- certificates (KAFKA_TLS=1) ------------------------------------------------------------------

generate_certificates() {
  if [ -f "$tls_dir/.complete" ]; then return; fi
  command -v openssl >/dev/null || { log_msg "openssl is required for KAFKA_TLS=1"; exit 1; }
  command -v keytool >/dev/null || { log_msg "keytool (JDK) is required for KAFKA_TLS=1"; exit 1; }
  rm -rf "$tls_dir"; mkdir -p "$tls_dir"; chmod 700 "$tls_dir"
  local pass; pass="$(random_secret)"; printf '%s' "$pass" > "$tls_dir/store.password"
  (
    cd "$tls_dir"
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 30 -keyout ca.key -out ca.pem \
      -subj "/CN=bankstream local test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    sign() { # name, subject, extensions
      openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      printf '%b' "$3" > "$1.ext"
      openssl x509 -req -sha256 -days 30 -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
        -out "$1.pem" -extfile "$1.ext" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    sign broker "/CN=localhost" "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n"
    sign client "/CN=bankstream-client" "extendedKeyUsage=clientAuth\n"
    # The broker reads PKCS12 stores: its key and chain, and the CA it trusts (inter-broker and mTLS).
    openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
      -out broker.p12 -passout "pass:$pass"
    keytool -importcert -noprompt -alias ca -file ca.pem -keystore truststore.p12 -storetype PKCS12 \
      -storepass "$pass" >/dev/null 2>&1
    chmod 600 ./*.key ./*.p12 store.password
  )
  touch "$tls_dir/.complete"
  log_msg "generated a CA and broker/client certificates in $tls_dir"
}

# ---- users (KAFKA_SASL) ----------------------------------------------------------------------------

# Writes one password file per user (admin, the super user, first) and prints "name password" lines.
prepare_users() {
  mkdir -p "$sasl_dir"; chmod 700 "$sasl_dir"
  [ -f "$sasl_dir/admin.password" ] || random_secret > "$sasl_dir/admin.password"
  chmod 600 "$sasl_dir/admin.password"
  echo "admin $(admin_password)"
  local users="${KAFKA_SASL_USERS:-bankstream}" entry name password
  for entry in ${users//,/ }; do
    name="${entry%%:*}"
    case "$name" in ''|admin|*[!A-Za-z0-9._-]*) fail "KAFKA_SASL_USERS: bad user name \"$name\" (letters, digits, . _ -; admin is reserved)";; esac
    if [ "$entry" != "$name" ]; then password="${entry#*:}"; printf '%s' "$password" > "$sasl_dir/$name.password"
    elif [ ! -f "$sasl_dir/$name.password" ]; then random_secret | tr -d '\n' > "$sasl_dir/$name.password"; fi
    chmod 600 "$sasl_dir/$name.password"
    echo "$name $(cat "$sasl_dir/$name.password")"
  done
}

first_user() { local entry="${KAFKA_SASL_USERS:-bankstream}"; entry="${entry%%,*}"; echo "${entry%%:*}"; }

# ---- configuration -------------------------------------------------------------------------------

write_admin_properties() {
  [ "$secure" = 1 ] || return 0
  {
    echo "security.protocol=$protocol"
    if [ "$tls" = 1 ]; then
      echo "ssl.truststore.type=PKCS12"
      echo "ssl.truststore.location=$tls_dir/truststore.p12"
      echo "ssl.truststore.password=$(store_password)"
      if [ "$client_auth" != none ]; then
        echo "ssl.keystore.type=PKCS12"
        echo "ssl.keystore.location=$tls_dir/broker.p12"
        echo "ssl.keystore.password=$(store_password)"
      fi
    fi
    if [ "$sasl_scram" = 1 ]; then
      echo "sasl.mechanism=SCRAM-SHA-512"
      echo "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$(admin_password)\";"
    elif [ "$sasl_plain" = 1 ]; then
      echo "sasl.mechanism=PLAIN"
      echo "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"$(admin_password)\";"
    fi
  } > "$admin_props"
  chmod 600 "$admin_props"
}

voters() { local out="" i; for i in $(all_nodes); do out="$out${out:+,}$i@127.0.0.1:$(node_controller_port "$i")"; done; echo "$out"; }

# The listener lines: the default single plain node keeps exactly its historical configuration.
listener_config() { # node
  local p c; p="$(node_port "$1")"; c="$(node_controller_port "$1")"
  if [ "$secure" = 0 ]; then
    cat <<PROPS
listeners=PLAINTEXT://127.0.0.1:$p,CONTROLLER://127.0.0.1:$c
advertised.listeners=PLAINTEXT://127.0.0.1:$p
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
PROPS
    return
  fi
  local controller_protocol=PLAINTEXT
  if [ "$sasl_on" = 1 ]; then controller_protocol=SASL_PLAINTEXT; fi
  cat <<PROPS
listeners=CLIENT://127.0.0.1:$p,CONTROLLER://127.0.0.1:$c
advertised.listeners=CLIENT://127.0.0.1:$p
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENT
listener.security.protocol.map=CLIENT:$protocol,CONTROLLER:$controller_protocol
PROPS
  if [ "$tls" = 1 ]; then
    cat <<PROPS
ssl.keystore.type=PKCS12
ssl.keystore.location=$tls_dir/broker.p12
ssl.keystore.password=$(store_password)
ssl.key.password=$(store_password)
ssl.truststore.type=PKCS12
ssl.truststore.location=$tls_dir/truststore.p12
ssl.truststore.password=$(store_password)
ssl.client.auth=$client_auth
ssl.endpoint.identification.algorithm=https
PROPS
  fi
  if [ "$sasl_on" = 1 ]; then
    local mechanisms="" pw; pw="$(admin_password)"
    if [ "$sasl_scram" = 1 ]; then mechanisms="SCRAM-SHA-512,SCRAM-SHA-256"; fi
    if [ "$sasl_plain" = 1 ]; then mechanisms="$mechanisms${mechanisms:+,}PLAIN"; fi
    local plain_users; plain_users="$(prepare_users | awk '{ printf " user_%s=\"%s\"", $1, $2 }')"
    cat <<PROPS
listener.name.client.sasl.enabled.mechanisms=$mechanisms
sasl.mechanism.inter.broker.protocol=${mechanisms%%,*}
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$pw";
listener.name.client.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$pw";
listener.name.client.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$pw"$plain_users;
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$pw" user_admin="$pw";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin
allow.everyone.if.no.acl.found=false
PROPS
  fi
}

write_config() { # node
  local dir replication min_isr; dir="$(node_dir "$1")"
  if [ "$nodes" = 1 ]; then replication=1; min_isr=1; else replication=3; min_isr=2; fi
  mkdir -p "$dir/logs"
  {
    cat <<PROPS
process.roles=broker,controller
node.id=$1
controller.quorum.voters=$(voters)
PROPS
    listener_config "$1"
    cat <<PROPS
log.dirs=$dir/logs
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=$replication
offsets.topic.replication.factor=$replication
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=$replication
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=12
group.initial.rebalance.delay.ms=0
transaction.max.timeout.ms=900000
log.retention.hours=168
log.cleaner.enable=true
PROPS
  } > "$dir/server.properties"
  # It holds store and user passwords in the secure modes.
  chmod 600 "$dir/server.properties"
  cat > "$dir/log4j2.xml" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <File name="file" fileName="$dir/server.log" append="true">
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

format_storage() { # node cluster-id
  local dir; dir="$(node_dir "$1")"
  if [ -f "$dir/logs/meta.properties" ]; then return 0; fi
  local scram=()
  if [ "$sasl_scram" = 1 ]; then
    local name password
    while read -r name password; do
      scram+=(--add-scram "SCRAM-SHA-512=[name=$name,password=$password]" --add-scram "SCRAM-SHA-256=[name=$name,password=$password]")
    done < <(prepare_users)
  fi
  java_tool kafka.tools.StorageTool format -t "$2" -c "$dir/server.properties" --ignore-formatted "${scram[@]}" >/dev/null
  log_msg "formatted KRaft storage in $dir/logs (cluster $2)"
}

launch() { # node
  local dir; dir="$(node_dir "$1")"
  setsid nohup java -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.xml" -Dkafka.logs.dir="$dir" \
    -cp "$libs/*" kafka.Kafka "$dir/server.properties" >"$dir/kafka.out" 2>&1 < /dev/null &
  echo $! > "$dir/kafka.pid"
}

wait_ready() { # nodes...
  local deadline=$((SECONDS + start_timeout_s)) i
  for i in "$@"; do
    until answers_metadata "$i"; do
      if ! running_pid "$i" >/dev/null; then
        local dir; dir="$(node_dir "$i")"
        log_msg "node $i exited during start-up; last lines of $dir/kafka.out and $dir/server.log:"
        tail -n 20 "$dir/kafka.out" "$dir/server.log" >&2 || true
        return 1
      fi
      if [ $SECONDS -ge $deadline ]; then log_msg "node $i gave no metadata answer within ${start_timeout_s}s"; return 1; fi
      sleep 1
    done
  done
}

check_mode() {
  mkdir -p "$data"
  if [ -f "$data/mode" ] && [ "$(cat "$data/mode")" != "$mode" ]; then
    fail "$data was set up for \"$(cat "$data/mode")\", not \"$mode\"; run \"scripts/kafka.sh reset\" with the old settings, or use another KAFKA_DATA_DIR"
  fi
  echo "$mode" > "$data/mode"
}

start() {
  assemble
  check_mode
  local to_start=() i
  for i in $(all_nodes); do
    if pid="$(running_pid "$i")"; then log_msg "node $i already running (pid $pid) on 127.0.0.1:$(node_port "$i")"
    else to_start+=("$i"); fi
  done
  if [ "${#to_start[@]}" = 0 ]; then return 0; fi
  if [ "$tls" = 1 ]; then generate_certificates; fi
  if [ "$sasl_on" = 1 ]; then prepare_users >/dev/null; fi
  for i in $(all_nodes); do write_config "$i"; done
  write_admin_properties
  local cluster_id_file="$data/cluster.id"
  [ -f "$cluster_id_file" ] || java_tool kafka.tools.StorageTool random-uuid > "$cluster_id_file"
  for i in "${to_start[@]}"; do
    format_storage "$i" "$(cat "$cluster_id_file")"
    if answers_metadata "$i"; then
      log_msg "something else already answers on 127.0.0.1:$(node_port "$i"); not starting a second broker"
      return 1
    fi
  done
  # All nodes are launched before waiting: a KRaft quorum of three answers nothing until two are up.
  for i in "${to_start[@]}"; do
    log_msg "starting Kafka $version node $i on 127.0.0.1:$(node_port "$i") ($protocol; log: $(node_dir "$i")/server.log)"
    launch "$i"
  done
  wait_ready "${to_start[@]}"
  log_msg "ready on $(bootstrap) ($protocol)"
}

stop_node() { # node signal
  local pid
  if ! pid="$(running_pid "$1")"; then rm -f "$(node_dir "$1")/kafka.pid"; return 0; fi
  kill "-$2" "$pid"
  local deadline=$((SECONDS + stop_timeout_s))
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then log_msg "node $1 did not stop in ${stop_timeout_s}s; killing"; kill -KILL "$pid" || true; break; fi
    sleep 0.5
  done
  rm -f "$(node_dir "$1")/kafka.pid"
  log_msg "node $1 stopped ($2)"
}

stop() {
  local i any=0
  for i in $(all_nodes); do if running_pid "$i" >/dev/null; then any=1; fi; done
  if [ "$any" = 0 ]; then log_msg "not running"; fi
  # Stop the nodes together: one by one, the last ones would wait for a quorum that is gone.
  for i in $(all_nodes); do if pid="$(running_pid "$i")"; then kill -TERM "$pid"; fi; done
  for i in $(all_nodes); do stop_node "$i" TERM; done
}

node_arg() {
  case "${1:-}" in ''|*[!0-9]*) fail "expected a node number 1..$nodes";; esac
  [ "$1" -ge 1 ] && [ "$1" -le "$nodes" ] || fail "expected a node number 1..$nodes, got $1"
  echo "$1"
}

print_env() {
  echo "KAFKA_BROKERS=$(bootstrap)"
  echo "KAFKA_SECURITY_PROTOCOL=$protocol"
  if [ "$tls" = 1 ]; then
    echo "KAFKA_SSL_CA_FILE=$tls_dir/ca.pem"
    if [ "$client_auth" != none ]; then
      echo "KAFKA_SSL_CERT_FILE=$tls_dir/client.pem"
      echo "KAFKA_SSL_KEY_FILE=$tls_dir/client.key"
    fi
  fi
  if [ "$sasl_on" = 1 ]; then
    local user; user="$(first_user)"
    if [ "$sasl_scram" = 1 ]; then echo "KAFKA_SASL_MECHANISM=SCRAM-SHA-512"; else echo "KAFKA_SASL_MECHANISM=PLAIN"; fi
    echo "KAFKA_SASL_USERNAME=$user"
    echo "KAFKA_SASL_PASSWORD_FILE=$sasl_dir/$user.password"
  fi
  if [ "$nodes" = 3 ]; then
    echo "REPLICATION_FACTOR=3"
    echo "MIN_INSYNC_REPLICAS=2"
  fi
}

run_tool() {
  local tool="${1:-}"; shift || true
  local class
  case "$tool" in
    acls) class=org.apache.kafka.tools.AclCommand ;;
    configs) class=kafka.admin.ConfigCommand ;;
    topics) class=org.apache.kafka.tools.TopicCommand ;;
    cluster) class=org.apache.kafka.tools.ClusterTool ;;
    *) fail "tool: expected acls, configs, topics or cluster" ;;
  esac
  local config=()
  if [ "$secure" = 1 ]; then
    case "$tool" in cluster) config=(--config "$admin_props") ;; *) config=(--command-config "$admin_props") ;; esac
  fi
  java_tool "$class" --bootstrap-server "$(bootstrap)" "${config[@]}" "$@"
}

add_user() {
  [ "$sasl_scram" = 1 ] || fail "add-user needs KAFKA_SASL=scram"
  local name="${1:-}" password="${2:-}"
  case "$name" in ''|admin|*[!A-Za-z0-9._-]*) fail "add-user: bad user name \"$name\"";; esac
  [ -n "$password" ] || password="$(random_secret)"
  printf '%s' "$password" > "$sasl_dir/$name.password"; chmod 600 "$sasl_dir/$name.password"
  run_tool configs --alter --entity-type users --entity-name "$name" \
    --add-config "SCRAM-SHA-512=[password=$password],SCRAM-SHA-256=[password=$password]" >/dev/null
  log_msg "user $name created (password in $sasl_dir/$name.password)"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    for i in $(all_nodes); do
      if answers_metadata "$i"; then log_msg "node $i up on 127.0.0.1:$(node_port "$i")"
      else log_msg "node $i down on 127.0.0.1:$(node_port "$i")"; exit 1; fi
    done ;;
  reset) stop; rm -rf "$data"; log_msg "deleted $data" ;;
  env) print_env ;;
  kill-node) stop_node "$(node_arg "${2:-}")" KILL ;;
  start-node)
    n="$(node_arg "${2:-}")"
    if running_pid "$n" >/dev/null; then log_msg "node $n already running"; exit 0; fi
    launch "$n"; wait_ready "$n"; log_msg "node $n ready on 127.0.0.1:$(node_port "$n")" ;;
  add-user) shift; add_user "$@" ;;
  tool) shift; run_tool "$@" ;;
  *) echo "usage: $0 start|stop|status|reset|env|kill-node N|start-node N|add-user NAME [PASSWORD]|tool acls|configs|topics|cluster ARGS" >&2; exit 2 ;;
esac
