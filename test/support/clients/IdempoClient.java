// Test client built on Apache Kafka's own Java client (kafka-clients), so tests exercise a
// producer/consumer/admin that no one in this project wrote. Compiled on demand by java.ts.
//
//   produce  --bootstrap B --topics t1,t2 --count N [--start S] [--partition P] [--value-format text|json]
//            [--delay-ms D] [--value-size BYTES] [--report-failed true] [--props k=v,k=v] [--prop k=v]...
//       Sends seq S..S+N-1 to every topic (key = seq, value = "topic:seq" or JSON, padded with '.'
//       to --value-size when given), prints one JSON
//       summary line. Exit 0: all acked; 2: some records failed; 1: fatal error (bad config, fenced...).
//   consume  --bootstrap B --topics t1,t2 [--group G] --expect N [--timeout-ms T] [--linger-ms L] [--props ...]
//       Reads with a consumer group until N records arrived (then L ms more, to catch extra copies)
//       or T ms passed; prints one JSON line with every record.
//   admin    create-topic|describe-cluster|describe-topic|move-leader --bootstrap B ...
//   broker   --config server.properties [--cluster-id ID]
//       Formats the node's storage if needed (StorageTool, in this JVM) and runs kafka.Kafka;
//       saves one JVM start per broker.
//
// With IDEMPO_WATCH_STDIN=1 the process exits when stdin closes: the Node parent keeps the pipe
// open, so a parent that dies (even by SIGKILL) never leaves a broker or client behind.

import java.io.InputStream;
import java.io.PrintStream;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.*;
import org.apache.kafka.common.errors.*;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class IdempoClient {
  public static void main(String[] argv) throws Exception {
    if ("1".equals(System.getenv("IDEMPO_WATCH_STDIN"))) watchStdin();
    if (argv.length == 0) die("usage: IdempoClient produce|consume|admin|broker ...");
    String mode = argv[0];
    int code;
    try {
      switch (mode) {
        case "produce": code = produce(new Args(argv, 1)); break;
        case "consume": code = consume(new Args(argv, 1)); break;
        case "admin":
          if (argv.length < 2) die("usage: IdempoClient admin OP ...");
          code = admin(argv[1], new Args(argv, 2));
          break;
        case "broker": broker(new Args(argv, 1)); return;
        default: die("unknown mode " + mode); return;
      }
    } catch (Throwable t) {
      Throwable c = unwrap(t);
      System.out.println("{\"fatal\":" + q(c.getClass().getName() + ": " + c.getMessage()) + "}");
      System.err.println("fatal: " + c);
      System.out.flush();
      Runtime.getRuntime().halt(1);
      return;
    }
    System.out.flush();
    // halt, not exit: no lingering client threads or shutdown hooks can delay the exit.
    Runtime.getRuntime().halt(code);
  }

  // ---------------------------------------------------------------- produce
  static int produce(Args a) throws Exception {
    List<String> topics = a.list("topics");
    long count = a.longv("count", 10), start = a.longv("start", 0), delay = a.longv("delay-ms", 0);
    Integer partition = a.has("partition") ? Integer.valueOf(a.get("partition")) : null;
    boolean json = "json".equals(a.get("value-format", "text"));
    int valueSize = (int) a.longv("value-size", 0);
    // --timestamp: every record carries this application-set time; --repeat: each record is sent
    // that many times in a row (separate send() calls of the same record).
    Long timestamp = a.has("timestamp") ? Long.valueOf(a.get("timestamp")) : null;
    long repeat = a.longv("repeat", 1);
    // The values of failed records too (fault tests tell "failed" from "acknowledged but lost").
    boolean reportFailed = "true".equals(a.get("report-failed", "false"));
    List<String> failedValues = new ArrayList<>();
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, a.req("bootstrap"));
    p.put(ProducerConfig.CLIENT_ID_CONFIG, "idempo-test-producer");
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.putAll(a.props());

    AtomicLong acked = new AtomicLong();
    Map<String, Long> errors = new TreeMap<>();
    List<String> messages = new ArrayList<>();
    Map<String, long[]> parts = new TreeMap<>(); // "topic-p" -> {count, minOffset, maxOffset}
    long sent = 0;
    String fatal = null;
    long t0 = System.nanoTime();
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
      outer:
      for (long seq = start; seq < start + count; seq++) {
        for (String topic : topics) {
          String key = Long.toString(seq);
          String value = json ? "{\"topic\":" + q(topic) + ",\"seq\":" + seq + "}" : topic + ":" + seq;
          if (value.length() < valueSize) value = value + ".".repeat(valueSize - value.length());
          final String sentValue = value;
          for (long r = 0; r < repeat; r++) {
          try {
            producer.send(new ProducerRecord<>(topic, partition, timestamp, key, value), (md, e) -> {
              synchronized (errors) {
                if (e == null) {
                  acked.incrementAndGet();
                  long[] s = parts.computeIfAbsent(md.topic() + "-" + md.partition(), k -> new long[] {0, Long.MAX_VALUE, -1});
                  s[0]++;
                  s[1] = Math.min(s[1], md.offset());
                  s[2] = Math.max(s[2], md.offset());
                } else {
                  Throwable c = unwrap(e);
                  errors.merge(c.getClass().getSimpleName(), 1L, Long::sum);
                  if (messages.size() < 5) messages.add(c.getClass().getSimpleName() + ": " + c.getMessage());
                  if (reportFailed) failedValues.add(sentValue);
                }
              }
            });
            sent++;
          } catch (KafkaException e) {
            // send() itself throws once the producer is in a fatal state (fenced, auth, ...).
            fatal = unwrap(e).getClass().getSimpleName() + ": " + unwrap(e).getMessage();
            break outer;
          }
          }
          if (delay > 0) Thread.sleep(delay);
        }
      }
      producer.flush();
    } catch (KafkaException e) {
      if (fatal == null) fatal = unwrap(e).getClass().getSimpleName() + ": " + unwrap(e).getMessage();
    }
    long failed;
    StringBuilder sb = new StringBuilder();
    synchronized (errors) {
      failed = errors.values().stream().mapToLong(Long::longValue).sum();
      sb.append("{\"mode\":\"produce\",\"sent\":").append(sent).append(",\"acked\":").append(acked.get())
          .append(",\"failed\":").append(failed).append(",\"errors\":{");
      String sep = "";
      for (Map.Entry<String, Long> e : errors.entrySet()) {
        sb.append(sep).append(q(e.getKey())).append(':').append(e.getValue());
        sep = ",";
      }
      sb.append("},\"errorMessages\":[");
      sep = "";
      for (String m : messages) { sb.append(sep).append(q(m)); sep = ","; }
      sb.append("],\"failedValues\":[");
      sep = "";
      for (String v : failedValues) { sb.append(sep).append(q(v)); sep = ","; }
      sb.append("],\"partitions\":{");
      sep = "";
      for (Map.Entry<String, long[]> e : parts.entrySet()) {
        long[] s = e.getValue();
        sb.append(sep).append(q(e.getKey())).append(":{\"count\":").append(s[0]).append(",\"minOffset\":").append(s[1])
            .append(",\"maxOffset\":").append(s[2]).append('}');
        sep = ",";
      }
      sb.append("},\"elapsedMs\":").append((System.nanoTime() - t0) / 1_000_000)
          .append(",\"fatal\":").append(fatal == null ? "null" : q(fatal)).append('}');
    }
    System.out.println(sb);
    if (fatal != null) { System.err.println("fatal: " + fatal); return 1; }
    return failed > 0 ? 2 : 0;
  }

  // ---------------------------------------------------------------- consume
  static int consume(Args a) {
    List<String> topics = a.list("topics");
    long expect = a.longv("expect", Long.MAX_VALUE), timeout = a.longv("timeout-ms", 30000), linger = a.longv("linger-ms", 0);
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, a.req("bootstrap"));
    p.put(ConsumerConfig.GROUP_ID_CONFIG, a.get("group", "idempo-test-" + UUID.randomUUID()));
    p.put(ConsumerConfig.CLIENT_ID_CONFIG, "idempo-test-consumer");
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    p.putAll(a.props());
    StringBuilder recs = new StringBuilder();
    long n = 0;
    long t0 = System.nanoTime();
    long deadline = System.currentTimeMillis() + timeout;
    long stopAt = Long.MAX_VALUE;
    try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
      c.subscribe(topics);
      while (true) {
        long now = System.currentTimeMillis();
        long until = Math.min(deadline, stopAt);
        if (now >= until) break;
        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(Math.min(200, until - now)))) {
          if (n > 0) recs.append(',');
          recs.append("{\"t\":").append(q(r.topic())).append(",\"p\":").append(r.partition()).append(",\"o\":").append(r.offset())
              .append(",\"k\":").append(r.key() == null ? "null" : q(r.key())).append(",\"v\":")
              .append(r.value() == null ? "null" : q(r.value())).append('}');
          n++;
        }
        if (n >= expect && stopAt == Long.MAX_VALUE) stopAt = System.currentTimeMillis() + linger;
      }
      try { c.commitSync(Duration.ofSeconds(5)); } catch (KafkaException ignored) { /* offsets are a convenience here */ }
    }
    System.out.println("{\"mode\":\"consume\",\"count\":" + n + ",\"timedOut\":" + (n < expect) + ",\"elapsedMs\":"
        + (System.nanoTime() - t0) / 1_000_000 + ",\"records\":[" + recs + "]}");
    return 0;
  }

  // ---------------------------------------------------------------- admin
  static int admin(String op, Args a) throws Exception {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, a.req("bootstrap"));
    p.put(AdminClientConfig.CLIENT_ID_CONFIG, "idempo-test-admin");
    p.putAll(a.props());
    try (Admin admin = Admin.create(p)) {
      switch (op) {
        case "create-topic": {
          NewTopic t = new NewTopic(a.req("topic"), (int) a.longv("partitions", 1), (short) a.longv("replication-factor", 1));
          try {
            admin.createTopics(List.of(t)).all().get();
          } catch (ExecutionException e) {
            if (!(e.getCause() instanceof TopicExistsException)) throw e;
          }
          System.out.println("{\"created\":" + q(t.name()) + "}");
          return 0;
        }
        case "describe-cluster": {
          DescribeClusterResult r = admin.describeCluster();
          StringBuilder sb = new StringBuilder("{\"clusterId\":" + q(r.clusterId().get()) + ",\"controller\":" + r.controller().get().id() + ",\"nodes\":[");
          String sep = "";
          List<Node> nodes = new ArrayList<>(r.nodes().get());
          nodes.sort(Comparator.comparingInt(Node::id));
          for (Node n : nodes) {
            sb.append(sep).append("{\"id\":").append(n.id()).append(",\"host\":").append(q(n.host())).append(",\"port\":").append(n.port()).append('}');
            sep = ",";
          }
          System.out.println(sb.append("]}"));
          return 0;
        }
        case "describe-topic":
          System.out.println(describeTopicJson(admin, a.req("topic")));
          return 0;
        case "move-leader":
          return moveLeader(admin, a.req("topic"), (int) a.longv("partition", 0), (int) a.longv("to", -1), a.longv("timeout-ms", 60000));
        default:
          die("unknown admin op " + op);
          return 1;
      }
    }
  }

  static TopicPartitionInfo partitionInfo(Admin admin, String topic, int partition) throws Exception {
    TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
    return d.partitions().stream().filter(x -> x.partition() == partition).findFirst()
        .orElseThrow(() -> new IllegalArgumentException("no partition " + topic + "-" + partition));
  }

  static String describeTopicJson(Admin admin, String topic) throws Exception {
    TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
    StringBuilder sb = new StringBuilder("{\"topic\":" + q(topic) + ",\"partitions\":[");
    String sep = "";
    for (TopicPartitionInfo i : d.partitions()) {
      sb.append(sep).append("{\"partition\":").append(i.partition()).append(",\"leader\":").append(i.leader() == null ? -1 : i.leader().id())
          .append(",\"replicas\":").append(ids(i.replicas())).append(",\"isr\":").append(ids(i.isr())).append('}');
      sep = ",";
    }
    return sb.append("]}").toString();
  }

  static String ids(List<Node> nodes) {
    StringJoiner j = new StringJoiner(",", "[", "]");
    for (Node n : nodes) j.add(Integer.toString(n.id()));
    return j.toString();
  }

  // Leadership follows the preferred (first) replica: reorder the assignment so the target is
  // first (adding it if it is not a replica yet), wait for the reassignment, then run a
  // preferred leader election until the target leads.
  static int moveLeader(Admin admin, String topic, int partition, int to, long timeoutMs) throws Exception {
    long deadline = System.currentTimeMillis() + timeoutMs;
    TopicPartition tp = new TopicPartition(topic, partition);
    TopicPartitionInfo info = partitionInfo(admin, topic, partition);
    List<Integer> replicas = new ArrayList<>();
    for (Node n : info.replicas()) replicas.add(n.id());
    List<Integer> wanted = new ArrayList<>();
    wanted.add(to);
    for (Integer r : replicas) if (r != to) wanted.add(r);
    while (wanted.size() > Math.max(1, replicas.size())) wanted.remove(wanted.size() - 1);
    if (!wanted.equals(replicas)) {
      admin.alterPartitionReassignments(Map.of(tp, Optional.of(new NewPartitionReassignment(wanted)))).all().get();
      while (true) {
        boolean pending = !admin.listPartitionReassignments(Set.of(tp)).reassignments().get().isEmpty();
        List<Integer> now = new ArrayList<>();
        for (Node n : partitionInfo(admin, topic, partition).replicas()) now.add(n.id());
        if (!pending && now.equals(wanted)) break;
        if (System.currentTimeMillis() > deadline) throw new TimeoutException("reassignment of " + tp + " to " + wanted + " not done; replicas " + now);
        Thread.sleep(100);
      }
    }
    while (true) {
      info = partitionInfo(admin, topic, partition);
      if (info.leader() != null && info.leader().id() == to) break;
      if (System.currentTimeMillis() > deadline) throw new TimeoutException("leader of " + tp + " is still " + info.leader());
      try {
        Optional<Throwable> err = admin.electLeaders(ElectionType.PREFERRED, Set.of(tp)).partitions().get().get(tp);
        if (err != null && err.isPresent() && !(err.get() instanceof ElectionNotNeededException)) {
          // Typically the target is not in the ISR yet: retry until the deadline.
          System.err.println("elect " + tp + ": " + err.get());
        }
      } catch (ExecutionException e) {
        System.err.println("elect " + tp + ": " + e.getCause());
      }
      Thread.sleep(200);
    }
    System.out.println("{\"topic\":" + q(topic) + ",\"partition\":" + partition + ",\"leader\":" + to + ",\"replicas\":" + ids(info.replicas()) + "}");
    return 0;
  }

  // ---------------------------------------------------------------- broker
  static void broker(Args a) throws Exception {
    String cfg = a.req("config");
    if (a.has("cluster-id")) {
      // --ignore-formatted: a restarted node keeps its data.
      int rc = kafka.tools.StorageTool.execute(new String[] {"format", "-t", a.get("cluster-id"), "-c", cfg, "--ignore-formatted"}, System.out);
      if (rc != 0) die("storage format failed: " + rc);
    }
    kafka.Kafka.main(new String[] {cfg});
  }

  // ---------------------------------------------------------------- helpers
  static void watchStdin() {
    Thread t = new Thread(() -> {
      try {
        InputStream in = System.in;
        byte[] buf = new byte[256];
        while (in.read(buf) >= 0) { /* ignore input */ }
      } catch (Exception ignored) { /* closed */ }
      Runtime.getRuntime().halt(137);
    }, "idempo-stdin-watch");
    t.setDaemon(true);
    t.start();
  }

  static Throwable unwrap(Throwable t) {
    while ((t instanceof ExecutionException || t instanceof java.util.concurrent.CompletionException) && t.getCause() != null) t = t.getCause();
    return t;
  }

  static void die(String msg) {
    System.err.println(msg);
    System.out.flush();
    Runtime.getRuntime().halt(1);
  }

  static String q(String s) {
    if (s == null) return "null";
    StringBuilder sb = new StringBuilder("\"");
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"': sb.append("\\\""); break;
        case '\\': sb.append("\\\\"); break;
        case '\n': sb.append("\\n"); break;
        case '\r': sb.append("\\r"); break;
        case '\t': sb.append("\\t"); break;
        default:
          if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
          else sb.append(c);
      }
    }
    return sb.append('"').toString();
  }

  static final class Args {
    final Map<String, String> m = new HashMap<>();
    final List<String> props = new ArrayList<>();

    Args(String[] argv, int from) {
      for (int i = from; i < argv.length; i++) {
        String k = argv[i];
        if (!k.startsWith("--") || i + 1 >= argv.length) die("bad argument " + k + " (expected --name value)");
        String v = argv[++i];
        k = k.substring(2);
        if (k.equals("prop")) props.add(v);
        else if (k.equals("props")) { for (String kv : v.split(",")) if (!kv.isEmpty()) props.add(kv); }
        else m.put(k, v);
      }
    }

    boolean has(String k) { return m.containsKey(k); }
    String get(String k) { return m.get(k); }
    String get(String k, String d) { return m.getOrDefault(k, d); }
    String req(String k) {
      String v = m.get(k);
      if (v == null) die("missing --" + k);
      return v;
    }
    long longv(String k, long d) { return m.containsKey(k) ? Long.parseLong(m.get(k)) : d; }
    List<String> list(String k) { return Arrays.asList(req(k).split(",")); }
    Properties props() {
      Properties p = new Properties();
      for (String kv : props) {
        int i = kv.indexOf('=');
        if (i <= 0) die("bad property " + kv + " (expected k=v)");
        p.put(kv.substring(0, i), kv.substring(i + 1));
      }
      return p;
    }
  }
}
