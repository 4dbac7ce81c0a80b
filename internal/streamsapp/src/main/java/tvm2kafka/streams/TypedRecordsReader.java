package tvm2kafka.streams;

import io.apicurio.registry.serde.SerdeConfig;
import io.apicurio.registry.serde.avro.AvroKafkaDeserializer;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Collectors;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Reads a topic tvm2kafka wrote with KAFKA_VALUE_FORMAT=avro from the start to its end with
 * Apicurio Registry's own Avro deserializer (Confluent wire format: a 4-byte schema id, the
 * schema fetched from the registry), and prints one line per record: its key, a tab, and the
 * decoded record as JSON (GenericRecord.toString). Markers (header mde.marker, JSON values)
 * are counted, not decoded. Usage: TypedRecordsReader BROKERS TOPIC REGISTRY_V2_URL
 */
public final class TypedRecordsReader {
  public static void main(String[] args) throws Exception {
    if (args.length != 3) {
      System.err.println("usage: TypedRecordsReader BROKERS TOPIC REGISTRY_V2_URL");
      System.exit(2);
    }
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    Map<String, Object> serde = new HashMap<>();
    serde.put(SerdeConfig.REGISTRY_URL, args[2]);
    serde.put(SerdeConfig.ENABLE_CONFLUENT_ID_HANDLER, true); // 4-byte ids
    serde.put(SerdeConfig.ENABLE_HEADERS, false); // the id is in the value, not in headers
    serde.put(SerdeConfig.USE_ID, "contentId"); // the Confluent-compatible API's ids
    PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    long records = 0, markers = 0;
    try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p);
        AvroKafkaDeserializer<GenericRecord> avro = new AvroKafkaDeserializer<>()) {
      avro.configure(serde, false);
      List<PartitionInfo> infos = c.partitionsFor(args[1]);
      List<TopicPartition> tps =
          infos.stream().map(i -> new TopicPartition(i.topic(), i.partition())).collect(Collectors.toList());
      c.assign(tps);
      c.seekToBeginning(tps);
      Map<TopicPartition, Long> end = c.endOffsets(tps);
      while (tps.stream().anyMatch(tp -> c.position(tp) < end.get(tp))) {
        for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
          Header marker = r.headers().lastHeader("mde.marker");
          if (marker != null) {
            markers++;
            continue;
          }
          GenericRecord rec = avro.deserialize(r.topic(), r.value());
          out.println(new String(r.key(), StandardCharsets.UTF_8) + "\t" + rec);
          records++;
        }
      }
    }
    System.err.println("records=" + records + " markers=" + markers);
  }
}
