#!/usr/bin/env bash
# docker-compose.yml's broker command, in place of the apache/kafka image's own launch.
#
# The image's launch writes server.properties from the KAFKA_* environment and formats the
# storage, but its format cannot add SCRAM users, and the client listener takes SCRAM logins
# only: the users must be in the metadata before the first start (KIP-900), as the local
# secure cluster formats them (herald/tools/localkafka/jvm.py). So this script:
#   1. runs the image's config step alone (CLUSTER_ID unset: its format then fails, after
#      the configs are written, and nothing is formatted without the users);
#   2. formats with --add-scram for every `<principal>.password` the `secrets` one-shot
#      left in $HERALD_KAFKA_SECRETS, through a private java @argfile (the main class inside
#      it) so no password is ever on a command line; --ignore-formatted on a restart;
#   3. writes the health check's client settings (paths only, no secret) and starts Kafka.
set -euo pipefail
umask 077

secrets=${HERALD_KAFKA_SECRETS:?the folder of the secrets volume}
cluster_id=${HERALD_CLUSTER_ID:?the cluster id}
config=/opt/kafka/config/server.properties

if ! setup=$(env -u CLUSTER_ID /opt/kafka/bin/kafka-run-class.sh kafka.docker.KafkaDockerWrapper \
    setup --default-configs-dir /etc/kafka/docker --mounted-configs-dir /mnt/shared/config \
    --final-configs-dir /opt/kafka/config 2>&1); then
  # Expected: the wrapper's own format refuses to run without CLUSTER_ID.
  :
fi
if ! grep -q '^process.roles=' "$config"; then
  echo "kafka-secure-start: the image wrote no server.properties from KAFKA_*:" >&2
  echo "$setup" >&2
  exit 1
fi

argfile=$(mktemp)
trap 'rm -f "$argfile"' EXIT
users=()
passwords=()
{
  printf '"%s"\n' kafka.tools.StorageTool format --ignore-formatted \
    --cluster-id "$cluster_id" --config "$config"
  for file in "$secrets"/*.password; do
    [[ -f $file ]] || continue
    name=${file##*/}
    name=${name%.password}
    password=$(<"$file")
    # StorageTool's `[name=…,password=…]` has no escapes, and the argfile's quotes none
    # either: the one-shot makes URL-safe passwords; anything else is refused unshown.
    if [[ ! $password =~ ^[A-Za-z0-9_-]+$ || ! $name =~ ^[a-z0-9-]+$ ]]; then
      echo "kafka-secure-start: $file is not a password the secrets one-shot made" >&2
      exit 1
    fi
    printf '"%s"\n' --add-scram "SCRAM-SHA-512=[name=$name,password=$password]"
    users+=("$name")
    passwords+=("$password")
  done
} >"$argfile"
if [[ ${#users[@]} -eq 0 ]]; then
  echo "kafka-secure-start: no <principal>.password in $secrets" >&2
  exit 1
fi
# No perf data: it would publish the expanded arguments (`jcmd`, `jps -m`). Its output is
# kept back: it prints the SCRAM records (salts, stored keys); on failure it is shown with
# every password blanked (an error may quote an argument).
if ! output=$(java -Xmx256m -XX:-UsePerfData -cp '/opt/kafka/libs/*' "@$argfile" 2>&1); then
  for password in "${passwords[@]}"; do
    output=${output//"$password"/***}
  done
  echo "kafka-secure-start: formatting failed:" >&2
  echo "$output" >&2
  exit 1
fi
rm -f "$argfile"
trap - EXIT
echo "kafka-secure-start: storage ready, SCRAM users ${users[*]} (formatted now, or kept)"

# The health check speaks to the INTERNAL listener as the node (mTLS): no password needed.
cat >/tmp/node-client.properties <<EOF
security.protocol=SSL
ssl.keystore.type=PEM
ssl.keystore.location=$secrets/node-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$secrets/ca.pem
EOF

exec /opt/kafka/bin/kafka-server-start.sh "$config"
