#!/usr/bin/env bash
# Fetches a pinned Apache Kafka (broker, tools, clients and their runtime dependencies) from
# Maven Central into the cache, once. Prints the directory of jars (the classpath).
set -euo pipefail
KAFKA_VERSION="${IDEMPO_KAFKA_VERSION:-4.3.1}"
CACHE="${IDEMPO_CACHE:-$HOME/.cache/idempo}"
dir="$CACHE/kafka-$KAFKA_VERSION"
# Bump REV when the dependency list changes so existing caches are rebuilt.
# rev 2: pin slf4j-api 2.x; Maven's nearest-wins picked 1.7.36, which cannot see the
# log4j-slf4j2 provider, so brokers and tools logged nothing at all (NOP logger).
REV=2
if [ "$(cat "$dir/.complete" 2>/dev/null)" != "$REV" ]; then
  mkdir -p "$dir/pom"
  cat > "$dir/pom/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.idempo</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-clients</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.16</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
POM
  # Copy into a fresh dir and swap it in, so a stale jar never lingers on the classpath.
  rm -rf "$dir/libs.new"
  mvn -q -B -f "$dir/pom/pom.xml" dependency:copy-dependencies -DoutputDirectory="$dir/libs.new" -DincludeScope=runtime >&2
  rm -rf "$dir/libs.old"
  [ -d "$dir/libs" ] && mv "$dir/libs" "$dir/libs.old"
  mv "$dir/libs.new" "$dir/libs"
  rm -rf "$dir/libs.old"
  echo "$REV" > "$dir/.complete"
fi
echo "$dir/libs"
