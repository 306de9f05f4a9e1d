// Prints Kafka's error table (org.apache.kafka.common.protocol.Errors of the kafka-clients jar on
// the class path) as JSON lines, for scripts/codegen/gen-codecs.mjs: code, name, the exception
// class, whether it is a RetriableException (the Java producer re-sends on those: Sender.canRetry)
// and an InvalidMetadataException (the Java producer refreshes metadata first), and the message.
//
// Run: java -cp "<kafka libs>/*" scripts/codegen/KafkaErrors.java

import org.apache.kafka.common.errors.InvalidMetadataException;
import org.apache.kafka.common.errors.RetriableException;
import org.apache.kafka.common.protocol.Errors;

public class KafkaErrors {
  static String json(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      if (c == '"' || c == '\\') b.append('\\').append(c);
      else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
      else b.append(c);
    }
    return b.append('"').toString();
  }

  public static void main(String[] args) {
    for (Errors e : Errors.values()) {
      Throwable ex = e.exception();
      System.out.println("{\"code\":" + e.code()
          + ",\"name\":" + json(e.name())
          + ",\"exception\":" + (ex == null ? "null" : json(ex.getClass().getSimpleName()))
          + ",\"retriable\":" + (ex instanceof RetriableException)
          + ",\"invalidMetadata\":" + (ex instanceof InvalidMetadataException)
          + ",\"message\":" + json(e.message() == null ? "" : e.message()) + "}");
    }
  }
}
