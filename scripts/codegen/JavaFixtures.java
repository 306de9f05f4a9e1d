// Writes wire fixtures made by Kafka's own Java message classes (kafka-clients 4.3.1), so the
// TypeScript codecs are checked against an implementation no one here wrote. For each message
// and version it records the bytes and Kafka's JSON rendering of the same message.
//
// Run: scripts/codegen/gen-java-fixtures.sh  (java -cp "<kafka libs>/*" JavaFixtures.java OUT)

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.List;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.compress.Compression;
import org.apache.kafka.common.message.*;
import org.apache.kafka.common.protocol.ByteBufferAccessor;
import org.apache.kafka.common.protocol.Message;
import org.apache.kafka.common.protocol.ObjectSerializationCache;
import org.apache.kafka.common.protocol.types.RawTaggedField;
import org.apache.kafka.common.record.internal.MemoryRecords;
import org.apache.kafka.common.record.internal.SimpleRecord;

public class JavaFixtures {
  static final ObjectMapper M = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
  static final ArrayNode OUT = M.createArrayNode();
  static final Uuid TOPIC_ID = new Uuid(0x0123456789abcdefL, 0x0fedcba987654321L);

  static byte[] bytes(Message data, int v) {
    ObjectSerializationCache cache = new ObjectSerializationCache();
    int size = data.size(cache, (short) v);
    ByteBuffer buf = ByteBuffer.allocate(size);
    data.write(new ByteBufferAccessor(buf), cache, (short) v);
    return buf.array();
  }

  static void add(String name, int v, Message data, JsonNode json) {
    ObjectNode o = OUT.addObject();
    o.put("message", name);
    o.put("version", v);
    o.put("hex", HexFormat.of().formatHex(bytes(data, v)));
    o.set("json", json);
  }

  static void addBatch(String name, MemoryRecords records) {
    ObjectNode o = OUT.addObject();
    o.put("message", "RecordBatch");
    o.put("version", 2);
    o.put("name", name);
    ByteBuffer rb = records.buffer();
    byte[] raw = new byte[rb.remaining()];
    rb.get(raw);
    o.put("hex", HexFormat.of().formatHex(raw));
  }

  static MemoryRecords idempotentBatch() {
    return MemoryRecords.withIdempotentRecords(Compression.NONE, 4242L, (short) 3, 17,
        new SimpleRecord(1700000000000L, "k1".getBytes(), "hello".getBytes()),
        new SimpleRecord(1700000000001L, null, "world".getBytes()));
  }

  static MemoryRecords plainGzipBatch() {
    return MemoryRecords.withRecords(Compression.gzip().build(),
        new SimpleRecord(1700000000002L, "k2".getBytes(), "compressed value".getBytes()));
  }

  public static void main(String[] args) throws Exception {
    for (int v = 1; v <= 2; v++) {
      RequestHeaderData h = new RequestHeaderData().setRequestApiKey((short) 0).setRequestApiVersion((short) 9)
          .setCorrelationId(77).setClientId(v == 2 ? "client-ü" : null);
      if (v == 2) h.unknownTaggedFields().add(new RawTaggedField(5, new byte[] {9, 8}));
      add("RequestHeader", v, h, RequestHeaderDataJsonConverter.write(h, (short) v));
    }
    for (int v = 0; v <= 1; v++) {
      ResponseHeaderData h = new ResponseHeaderData().setCorrelationId(-3);
      add("ResponseHeader", v, h, ResponseHeaderDataJsonConverter.write(h, (short) v));
    }

    for (int v = 3; v <= 13; v++) {
      ProduceRequestData d = new ProduceRequestData().setTransactionalId(null).setAcks((short) -1).setTimeoutMs(30000);
      ProduceRequestData.TopicProduceDataCollection topics = new ProduceRequestData.TopicProduceDataCollection();
      ProduceRequestData.TopicProduceData t = new ProduceRequestData.TopicProduceData();
      if (v <= 12) t.setName("orders");
      else t.setTopicId(TOPIC_ID);
      t.setPartitionData(List.of(
          new ProduceRequestData.PartitionProduceData().setIndex(0).setRecords(idempotentBatch()),
          new ProduceRequestData.PartitionProduceData().setIndex(1).setRecords(plainGzipBatch())));
      topics.add(t);
      d.setTopicData(topics);
      add("ProduceRequest", v, d, ProduceRequestDataJsonConverter.write(d, (short) v, false));
    }

    for (int v = 3; v <= 13; v++) {
      ProduceResponseData d = new ProduceResponseData().setThrottleTimeMs(5);
      ProduceResponseData.TopicProduceResponseCollection rs = new ProduceResponseData.TopicProduceResponseCollection();
      ProduceResponseData.TopicProduceResponse t = new ProduceResponseData.TopicProduceResponse();
      if (v <= 12) t.setName("orders");
      else t.setTopicId(TOPIC_ID);
      ProduceResponseData.PartitionProduceResponse p0 = new ProduceResponseData.PartitionProduceResponse()
          .setIndex(0).setErrorCode((short) 0).setBaseOffset(123456789012L).setLogAppendTimeMs(-1).setLogStartOffset(7);
      ProduceResponseData.PartitionProduceResponse p1 = new ProduceResponseData.PartitionProduceResponse()
          .setIndex(1).setErrorCode((short) 6).setBaseOffset(-1);
      if (v >= 8) {
        p0.setRecordErrors(List.of(new ProduceResponseData.BatchIndexAndErrorMessage().setBatchIndex(1).setBatchIndexErrorMessage("bad record")));
        p0.setErrorMessage("some records were invalid");
      }
      if (v >= 10) p1.setCurrentLeader(new ProduceResponseData.LeaderIdAndEpoch().setLeaderId(2).setLeaderEpoch(7));
      t.setPartitionResponses(List.of(p0, p1));
      rs.add(t);
      d.setResponses(rs);
      if (v >= 10) {
        ProduceResponseData.NodeEndpointCollection ne = new ProduceResponseData.NodeEndpointCollection();
        ne.add(new ProduceResponseData.NodeEndpoint().setNodeId(2).setHost("b2.kafka.svc").setPort(9093).setRack("rack-a"));
        d.setNodeEndpoints(ne);
      }
      if (v >= 9) d.unknownTaggedFields().add(new RawTaggedField(3, new byte[] {1, 2, 3}));
      add("ProduceResponse", v, d, ProduceResponseDataJsonConverter.write(d, (short) v));
    }

    for (int v = 0; v <= 13; v++) {
      MetadataRequestData d = new MetadataRequestData();
      MetadataRequestData.MetadataRequestTopic t = new MetadataRequestData.MetadataRequestTopic().setName("orders");
      if (v >= 10) t.setTopicId(TOPIC_ID);
      d.setTopics(List.of(t));
      if (v >= 4) d.setAllowAutoTopicCreation(false);
      if (v >= 8 && v <= 10) d.setIncludeClusterAuthorizedOperations(true);
      if (v >= 8) d.setIncludeTopicAuthorizedOperations(true);
      add("MetadataRequest", v, d, MetadataRequestDataJsonConverter.write(d, (short) v));
      if (v >= 1) {
        MetadataRequestData all = new MetadataRequestData().setTopics(null);
        add("MetadataRequest", v, all, MetadataRequestDataJsonConverter.write(all, (short) v));
      }
    }

    for (int v = 0; v <= 13; v++) {
      MetadataResponseData d = new MetadataResponseData();
      if (v >= 3) d.setThrottleTimeMs(10);
      MetadataResponseData.MetadataResponseBrokerCollection bs = new MetadataResponseData.MetadataResponseBrokerCollection();
      bs.add(new MetadataResponseData.MetadataResponseBroker().setNodeId(1).setHost("b1.kafka.svc").setPort(9092).setRack(v >= 1 ? "rack-a" : null));
      bs.add(new MetadataResponseData.MetadataResponseBroker().setNodeId(2).setHost("b2.kafka.svc").setPort(9093).setRack(null));
      d.setBrokers(bs);
      if (v >= 2) d.setClusterId("cluster-x");
      if (v >= 1) d.setControllerId(1);
      MetadataResponseData.MetadataResponseTopicCollection ts = new MetadataResponseData.MetadataResponseTopicCollection();
      MetadataResponseData.MetadataResponseTopic t = new MetadataResponseData.MetadataResponseTopic().setErrorCode((short) 0).setName("orders");
      if (v >= 10) t.setTopicId(TOPIC_ID);
      if (v >= 1) t.setIsInternal(false);
      MetadataResponseData.MetadataResponsePartition p = new MetadataResponseData.MetadataResponsePartition()
          .setErrorCode((short) 0).setPartitionIndex(0).setLeaderId(1).setReplicaNodes(List.of(1, 2)).setIsrNodes(List.of(1));
      if (v >= 7) p.setLeaderEpoch(5);
      if (v >= 5) p.setOfflineReplicas(List.of(2));
      t.setPartitions(List.of(p));
      if (v >= 8) t.setTopicAuthorizedOperations(0x0ff8);
      ts.add(t);
      d.setTopics(ts);
      if (v >= 8 && v <= 10) d.setClusterAuthorizedOperations(0x7f);
      add("MetadataResponse", v, d, MetadataResponseDataJsonConverter.write(d, (short) v));
    }

    for (int v = 0; v <= 4; v++) {
      ApiVersionsRequestData q = new ApiVersionsRequestData();
      if (v >= 3) q.setClientSoftwareName("idempo-test").setClientSoftwareVersion("1.0.0");
      add("ApiVersionsRequest", v, q, ApiVersionsRequestDataJsonConverter.write(q, (short) v));
      ApiVersionsResponseData d = new ApiVersionsResponseData().setErrorCode((short) 0);
      ApiVersionsResponseData.ApiVersionCollection ks = new ApiVersionsResponseData.ApiVersionCollection();
      ks.add(new ApiVersionsResponseData.ApiVersion().setApiKey((short) 0).setMinVersion((short) 3).setMaxVersion((short) 13));
      ks.add(new ApiVersionsResponseData.ApiVersion().setApiKey((short) 3).setMinVersion((short) 0).setMaxVersion((short) 13));
      ks.add(new ApiVersionsResponseData.ApiVersion().setApiKey((short) 18).setMinVersion((short) 0).setMaxVersion((short) 4));
      d.setApiKeys(ks);
      if (v >= 1) d.setThrottleTimeMs(0);
      if (v >= 3) {
        ApiVersionsResponseData.SupportedFeatureKeyCollection sf = new ApiVersionsResponseData.SupportedFeatureKeyCollection();
        sf.add(new ApiVersionsResponseData.SupportedFeatureKey().setName("metadata.version").setMinVersion((short) 7).setMaxVersion((short) 27));
        d.setSupportedFeatures(sf);
        d.setFinalizedFeaturesEpoch(42L);
        ApiVersionsResponseData.FinalizedFeatureKeyCollection ff = new ApiVersionsResponseData.FinalizedFeatureKeyCollection();
        ff.add(new ApiVersionsResponseData.FinalizedFeatureKey().setName("metadata.version").setMinVersionLevel((short) 27).setMaxVersionLevel((short) 27));
        d.setFinalizedFeatures(ff);
      }
      add("ApiVersionsResponse", v, d, ApiVersionsResponseDataJsonConverter.write(d, (short) v));
    }

    for (int v = 0; v <= 6; v++) {
      FindCoordinatorRequestData q = new FindCoordinatorRequestData();
      if (v <= 3) q.setKey("group-1");
      if (v >= 1) q.setKeyType((byte) 0);
      if (v >= 4) q.setCoordinatorKeys(List.of("group-1", "group-2"));
      add("FindCoordinatorRequest", v, q, FindCoordinatorRequestDataJsonConverter.write(q, (short) v));
      FindCoordinatorResponseData d = new FindCoordinatorResponseData();
      if (v >= 1) d.setThrottleTimeMs(3);
      if (v <= 3) {
        d.setErrorCode((short) 0).setNodeId(1).setHost("b1.kafka.svc").setPort(9092);
        if (v >= 1) d.setErrorMessage(null);
      } else {
        d.setCoordinators(List.of(
            new FindCoordinatorResponseData.Coordinator().setKey("group-1").setNodeId(1).setHost("b1.kafka.svc").setPort(9092).setErrorCode((short) 0).setErrorMessage(null),
            new FindCoordinatorResponseData.Coordinator().setKey("group-2").setNodeId(-1).setHost("").setPort(-1).setErrorCode((short) 15).setErrorMessage("not available")));
      }
      add("FindCoordinatorResponse", v, d, FindCoordinatorResponseDataJsonConverter.write(d, (short) v));
    }

    for (int v = 0; v <= 2; v++) {
      DescribeClusterRequestData q = new DescribeClusterRequestData().setIncludeClusterAuthorizedOperations(true);
      if (v >= 1) q.setEndpointType((byte) 1);
      if (v >= 2) q.setIncludeFencedBrokers(true);
      add("DescribeClusterRequest", v, q, DescribeClusterRequestDataJsonConverter.write(q, (short) v));
      DescribeClusterResponseData d = new DescribeClusterResponseData().setThrottleTimeMs(0).setErrorCode((short) 0)
          .setErrorMessage(null).setClusterId("cluster-x").setControllerId(1).setClusterAuthorizedOperations(0x1234);
      if (v >= 1) d.setEndpointType((byte) 1);
      DescribeClusterResponseData.DescribeClusterBrokerCollection bs = new DescribeClusterResponseData.DescribeClusterBrokerCollection();
      DescribeClusterResponseData.DescribeClusterBroker b = new DescribeClusterResponseData.DescribeClusterBroker().setBrokerId(1).setHost("b1.kafka.svc").setPort(9092).setRack("rack-a");
      if (v >= 2) b.setIsFenced(true);
      bs.add(b);
      d.setBrokers(bs);
      add("DescribeClusterResponse", v, d, DescribeClusterResponseDataJsonConverter.write(d, (short) v));
    }

    for (int v = 0; v <= 6; v++) {
      InitProducerIdRequestData q = new InitProducerIdRequestData().setTransactionalId(null).setTransactionTimeoutMs(60000);
      if (v >= 3) q.setProducerId(-1L).setProducerEpoch((short) -1);
      add("InitProducerIdRequest", v, q, InitProducerIdRequestDataJsonConverter.write(q, (short) v));
      InitProducerIdResponseData d = new InitProducerIdResponseData().setThrottleTimeMs(0).setErrorCode((short) 0)
          .setProducerId(4242L).setProducerEpoch((short) 0);
      add("InitProducerIdResponse", v, d, InitProducerIdResponseDataJsonConverter.write(d, (short) v));
    }

    // Lone RecordBatches for the record-batch tests: the same records written plain and with
    // producer ids, so stamping one must reproduce the other byte for byte.
    SimpleRecord[] recs = {
        new SimpleRecord(1700000000000L, "k1".getBytes(), "hello".getBytes()),
        new SimpleRecord(1700000000001L, null, "world".getBytes())};
    addBatch("plain", MemoryRecords.withRecords(Compression.NONE, recs));
    addBatch("idempotent", MemoryRecords.withIdempotentRecords(Compression.NONE, 4242L, (short) 3, 17, recs));
    addBatch("restamped", MemoryRecords.withIdempotentRecords(Compression.NONE, 9001L, (short) 0, 2147483000, recs));
    addBatch("plainGzip", MemoryRecords.withRecords(Compression.gzip().build(), recs));
    addBatch("idempotentGzip", MemoryRecords.withIdempotentRecords(Compression.gzip().build(), 4242L, (short) 3, 17, recs));
    addBatch("transactional", MemoryRecords.withTransactionalRecords(Compression.NONE, 4242L, (short) 3, 17, recs));

    Files.writeString(Path.of(args[0]), M.writeValueAsString(OUT) + "\n");
  }
}
