#!/usr/bin/env bash
# A real Apache Kafka broker (KRaft, single node, 127.0.0.1) for the tests.
#   scripts/kafka.sh install          resolve the jars with Maven (the repositories its own settings
#                                     name, Maven Central by default) into the cache
#   scripts/kafka.sh start DIR        start a broker with its data in DIR; prints "BOOTSTRAP=host:port"
#   scripts/kafka.sh start-secure DIR a secured broker: SASL_SSL (SCRAM-SHA-512), mTLS and OAUTHBEARER
#                                     (SASL_SSL, JWTs checked against a JWKS file) listeners,
#                                     ACLs (StandardAuthorizer), certificates made in DIR/tls; prints
#                                     KEY=VALUE lines (SASL_SSL_BOOTSTRAP, MTLS_BOOTSTRAP, CA_FILE, …),
#                                     also kept in DIR/secure.env
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
  common_properties "$dir" "$ctl" > "$dir/server.properties"
  cat >> "$dir/server.properties" <<PROPS
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$ctl
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
auto.create.topics.enable=true
PROPS
  format "$dir"
  echo "$port" > "$dir/port"
  launch "$dir"
}

# The settings both brokers share: one KRaft node on 127.0.0.1, test-sized internal topics.
common_properties() {
  local dir="$1" ctl="$2"
  cat <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$ctl
controller.listener.names=CONTROLLER
log.dirs=$dir/data
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
PROPS
  cat > "$dir/log4j2.yaml" <<'L4J'
Configuration:
  Appenders:
    Console: { name: STDOUT, PatternLayout: { pattern: "[%d] %p %m (%c)%n" } }
  Loggers:
    Root: { level: WARN, AppenderRef: [ { ref: STDOUT } ] }
L4J
}

# format DIR [StorageTool args…]: formats DIR's log dir (a new cluster id).
format() {
  local dir="$1"; shift
  local java_opts=(-Xmx512m -Xms128m -XX:+UseG1GC -Djava.awt.headless=true
                   -Dlog4j2.configurationFile="$dir/log4j2.yaml" -cp "$libs/*")
  # A cluster id starting with '-' would be read as an option (about one format in 64 failed so):
  # draw again, as Kafka's own `kafka-storage random-uuid` does.
  local cluster_id
  cluster_id="$(python3 -c 'import uuid,base64
while (i := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"): pass
print(i)')"
  if ! java "${java_opts[@]}" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$dir/server.properties" --standalone "$@" >"$dir/format.log" 2>&1; then
    log "kafka: formatting $dir failed:"; cat "$dir/format.log" >&2; exit 1
  fi
}

# certificates DIR/tls: a CA, the broker's certificate (SAN 127.0.0.1 and localhost; also its
# client certificate on the controller and inter-broker listeners), a client certificate of the
# CA (its key encrypted: clients give ssl.key.password), and a rogue CA with a client
# certificate of the same name, which the broker must refuse. Valid for 2 days: test fixtures.
certificates() {
  local tls="$1" pw="$2"
  mkdir -p "$tls"
  local o=(openssl); local days=2
  "${o[@]}" req -x509 -newkey rsa:2048 -nodes -days $days -subj "/CN=tracejoin-test-ca" \
      -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
  "${o[@]}" req -x509 -newkey rsa:2048 -nodes -days $days -subj "/CN=tracejoin-rogue-ca" \
      -keyout "$tls/rogue-ca.key" -out "$tls/rogue-ca.crt" 2>/dev/null
  # name CA KEY-OPTS…: a key and a certificate signed by CA.
  leaf() {
    local name="$1" ca="$2" cn="$3" ext="$4"; shift 4
    "${o[@]}" genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "$@" -out "$tls/$name.key" 2>/dev/null
    local passin=(); [ $# -gt 0 ] && passin=(-passin "pass:$pw")
    "${o[@]}" req -new -key "$tls/$name.key" "${passin[@]}" -subj "/CN=$cn" -out "$tls/$name.csr"
    printf '%s\n' "$ext" > "$tls/$name.ext"
    "${o[@]}" x509 -req -in "$tls/$name.csr" -CA "$tls/$ca.crt" -CAkey "$tls/$ca.key" -CAcreateserial \
        -days $days -extfile "$tls/$name.ext" -out "$tls/$name.crt" 2>/dev/null
    rm -f "$tls/$name.csr" "$tls/$name.ext"
  }
  leaf broker ca broker "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth"
  leaf client ca tracejoin-mtls "extendedKeyUsage=clientAuth" -aes-256-cbc -pass "pass:$pw"
  leaf rogue-client rogue-ca tracejoin-mtls "extendedKeyUsage=clientAuth"
  # Kafka's PEM key store: the unencrypted PKCS#8 key, then the certificate chain.
  cat "$tls/broker.key" "$tls/broker.crt" > "$tls/broker.pem"
  chmod 600 "$tls"/*.key "$tls/broker.pem"
}

# A broker with every client listener secured and an authorizer:
#   SASL_SSL  SCRAM-SHA-512 over TLS; users `admin` (a super user, for the tests' admin client)
#             and `tracejoin`, created at format time (StorageTool --add-scram)
#   MTLS      TLS with a required client certificate of the CA; the principal is the certificate's
#             CN (`User:tracejoin-mtls`); also the inter-broker listener (the broker is `User:broker`)
#   CONTROLLER  the same mTLS, for KRaft
# Principals other than the super users may do only what ACLs allow.
start_secure() {
  local dir="$1"; install
  mkdir -p "$dir"
  local sasl mtls ctl oauth; sasl="$(free_port)"; mtls="$(free_port)"; ctl="$(free_port)"; oauth="$(free_port)"
  local key_pw admin_pw user_pw
  key_pw="$(openssl rand -hex 12)"; admin_pw="$(openssl rand -hex 12)"; user_pw="$(openssl rand -hex 12)"
  certificates "$dir/tls" "$key_pw"
  # OAUTHBEARER: the broker verifies JWTs against a JWKS file; the token is what a test's token
  # endpoint hands out to librdkafka's OIDC client-credentials request.
  python3 "$here/oidc-fixture.py" "$dir/tls" tracejoin-oidc kafka tracejoin-test-idp
  # Kafka 4 fetches OAuth URLs only when this system property allows them.
  echo "-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=file://$dir/tls/jwks.json -Dorg.apache.kafka.sasl.oauthbearer.allowed.files=$dir/tls/jwks.json" > "$dir/jvm.opts"
  common_properties "$dir" "$ctl" > "$dir/server.properties"
  cat >> "$dir/server.properties" <<PROPS
listeners=SASL_SSL://127.0.0.1:$sasl,MTLS://127.0.0.1:$mtls,OAUTH://127.0.0.1:$oauth,CONTROLLER://127.0.0.1:$ctl
advertised.listeners=SASL_SSL://127.0.0.1:$sasl,MTLS://127.0.0.1:$mtls,OAUTH://127.0.0.1:$oauth
listener.security.protocol.map=SASL_SSL:SASL_SSL,MTLS:SSL,OAUTH:SASL_SSL,CONTROLLER:SSL
inter.broker.listener.name=MTLS
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.oauth.sasl.enabled.mechanisms=OAUTHBEARER
listener.name.oauth.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;
listener.name.oauth.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler
sasl.oauthbearer.jwks.endpoint.url=file://$dir/tls/jwks.json
sasl.oauthbearer.expected.audience=kafka
sasl.oauthbearer.expected.issuer=tracejoin-test-idp
ssl.keystore.type=PEM
ssl.keystore.location=$dir/tls/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$dir/tls/ca.crt
listener.name.mtls.ssl.client.auth=required
listener.name.controller.ssl.client.auth=required
ssl.principal.mapping.rules=RULE:^CN=([^,]+)\$/\$1/,DEFAULT
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:broker
allow.everyone.if.no.acl.found=false
auto.create.topics.enable=false
PROPS
  format "$dir" --add-scram "SCRAM-SHA-512=[name=admin,password=$admin_pw]" \
      --add-scram "SCRAM-SHA-512=[name=tracejoin,password=$user_pw]"
  echo "$sasl" > "$dir/port"
  cat > "$dir/secure.env" <<ENV
SASL_SSL_BOOTSTRAP=127.0.0.1:$sasl
MTLS_BOOTSTRAP=127.0.0.1:$mtls
OAUTH_BOOTSTRAP=127.0.0.1:$oauth
OIDC_PRINCIPAL=User:tracejoin-oidc
OIDC_TOKEN_FILE=$dir/tls/oidc-token.jwt
CA_FILE=$dir/tls/ca.crt
ADMIN_USER=admin
ADMIN_PASSWORD=$admin_pw
SCRAM_USER=tracejoin
SCRAM_PASSWORD=$user_pw
MTLS_PRINCIPAL=User:tracejoin-mtls
CLIENT_CERT=$dir/tls/client.crt
CLIENT_KEY=$dir/tls/client.key
CLIENT_KEY_PASSWORD=$key_pw
ROGUE_CA_FILE=$dir/tls/rogue-ca.crt
ROGUE_CLIENT_CERT=$dir/tls/rogue-client.crt
ROGUE_CLIENT_KEY=$dir/tls/rogue-client.key
ENV
  chmod 600 "$dir/secure.env"
  launch "$dir" >/dev/null
  daemon_ready "$dir" broker 30 port_open "$mtls"
  cat "$dir/secure.env"
}

# Runs the broker of an already formatted DIR and waits until it listens.
launch() {
  local dir="$1" port; port="$(cat "$dir/port")"
  local java_opts=(-Xmx512m -Xms128m -XX:+UseG1GC -Djava.awt.headless=true
                   -Dlog4j2.configurationFile="$dir/log4j2.yaml" -cp "$libs/*")
  if [ -f "$dir/jvm.opts" ]; then java_opts+=($(cat "$dir/jvm.opts")); fi
  daemon_start "$dir" broker java "${java_opts[@]}" kafka.Kafka "$dir/server.properties"
  daemon_ready "$dir" broker 90 port_open "$port"
  echo "BOOTSTRAP=127.0.0.1:$port"
}

stop() { daemon_stop "$1" broker 10; }

case "${1:-}" in
  install) install ;;
  start) start "${2:?data dir}" ;;
  start-secure) start_secure "${2:?data dir}" ;;
  stop) stop "${2:?data dir}" ;;
  # Stop, then start the same broker again (same port, same data): a broker restart.
  restart) stop "${2:?data dir}"; launch "$2" ;;
  *) echo "usage: $0 install | start DIR | start-secure DIR | stop DIR | restart DIR" >&2; exit 2 ;;
esac
