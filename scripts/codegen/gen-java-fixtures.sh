#!/usr/bin/env bash
# Regenerates sidecar/codec/fixtures/java-messages.json with Kafka's own Java message classes
# (kafka-clients 4.3.1, Java 17+). The output is checked in; tests do not need Java.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
libs=$("$root/scripts/kafka/fetch.sh" | tail -n1)
mkdir -p "$root/sidecar/codec/fixtures"
java -cp "$libs/*" "$root/scripts/codegen/JavaFixtures.java" "$root/sidecar/codec/fixtures/java-messages.json"
echo "wrote sidecar/codec/fixtures/java-messages.json"
