package tvm2kafka.streams;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Utils;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StoreQueryParameters;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.InvalidStateStoreException;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.QueryableStoreTypes;
import org.apache.kafka.streams.state.ReadOnlyKeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * A Kafka Streams application over tvm2kafka's two topics, run by the end-to-end tests:
 *
 * <ul>
 *   <li>a {@code KTable} built from the table topic ({@code KAFKA_TABLE_TOPIC}), materialised in
 *       the store {@code devices};
 *   <li>a {@code KStream} of the records topic ({@code KAFKA_TOPIC}, markers filtered out) joined
 *       with that table. The join is co-partitioned: a record finds its device in the table only
 *       when both topics put the DeviceId in the same partition, as the Java client's default
 *       partitioner does.
 * </ul>
 *
 * <p>Usage: {@code DeviceTableApp BOOTSTRAP RECORDS_TOPIC TABLE_TOPIC APPLICATION_ID STATE_DIR
 * PARTITIONS} (of both topics: a co-partitioned join needs the same count). It prints {@code
 * READY} once running, one line {@code JOIN <mde.run_id> <DeviceId> <found> <same> <partition>
 * <Java partition>} per record read from the records topic ({@code found}: the table held the
 * device; {@code same}: with this very line; the record's partition and the one the Java client's
 * default partitioner computes for its key), and on the input
 * line {@code dump} the store, one line {@code DUMP <DeviceId> <store partition> <Java partition>
 * <sha256 of the value>} per device and {@code DUMPED <count>} at the end. It stops at the end of
 * its input.
 */
public final class DeviceTableApp {
  private static final PrintStream OUT = new PrintStream(System.out, true, StandardCharsets.UTF_8);

  private DeviceTableApp() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 6) {
      System.err.println(
          "usage: DeviceTableApp BOOTSTRAP RECORDS_TOPIC TABLE_TOPIC APPLICATION_ID STATE_DIR PARTITIONS");
      System.exit(2);
    }
    String bootstrap = args[0], recordsTopic = args[1], tableTopic = args[2];
    int partitions = Integer.parseInt(args[5]);

    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[3]);
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(StreamsConfig.STATE_DIR_CONFIG, args[4]);
    // The table topic is compacted: it is its own changelog.
    props.put(StreamsConfig.TOPOLOGY_OPTIMIZATION_CONFIG, StreamsConfig.OPTIMIZE);
    // Every update reaches the store at once (no record cache), for the tests.
    props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");

    StreamsBuilder builder = new StreamsBuilder();
    // README "Consuming": Kafka Streams — begin
    KTable<String, String> devices =
        builder.table(
            tableTopic, // KAFKA_TABLE_TOPIC: key DeviceId, value the device's line
            Consumed.with(Serdes.String(), Serdes.String()),
            Materialized.<String, String>as(Stores.inMemoryKeyValueStore("devices")));
    KStream<String, String> records =
        builder.stream(recordsTopic, Consumed.with(Serdes.String(), Serdes.String()))
            .filter((deviceId, line) -> !"mde.snapshot".equals(deviceId)); // markers share one key
    // README "Consuming": Kafka Streams — end

    records
        .processValues(Stamp::new) // "<mde.run_id> <partition> <line>"
        .leftJoin(
            devices,
            (stamped, current) -> {
              String[] f = stamped.split(" ", 3);
              return f[0] + "\t" + f[1] + "\t" + (current != null) + "\t" + f[2].equals(current);
            })
        .foreach(
            (deviceId, joined) -> {
              String[] f = joined.split("\t", 4);
              int javaPartition =
                  Utils.toPositive(Utils.murmur2(deviceId.getBytes(StandardCharsets.UTF_8))) % partitions;
              print("JOIN\t" + f[0] + "\t" + deviceId + "\t" + f[2] + "\t" + f[3] + "\t" + f[1] + "\t" + javaPartition);
            });

    KafkaStreams streams = new KafkaStreams(builder.build(props), props); // props: the optimisation
    CountDownLatch running = new CountDownLatch(1);
    streams.setStateListener(
        (now, before) -> {
          if (now == KafkaStreams.State.RUNNING) {
            running.countDown();
          }
          if (now == KafkaStreams.State.ERROR) {
            System.err.println("kafka streams: state ERROR");
          }
        });
    streams.setUncaughtExceptionHandler(
        e -> {
          e.printStackTrace();
          return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
              .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
    streams.start();
    if (!running.await(120, TimeUnit.SECONDS)) {
      System.err.println("kafka streams did not reach RUNNING within 120 s");
      streams.close();
      System.exit(1);
    }
    print("READY");

    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    for (String cmd; (cmd = in.readLine()) != null; ) {
      if (cmd.trim().equals("dump")) {
        dump(streams, partitions);
      }
    }
    streams.close();
  }

  /** Prints the store partition by partition, retrying while it is not queryable. */
  private static void dump(KafkaStreams streams, int partitions) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (true) {
      try {
        StringBuilder sb = new StringBuilder();
        int n = 0;
        for (int p = 0; p < partitions; p++) {
          ReadOnlyKeyValueStore<String, String> store =
              streams.store(
                  StoreQueryParameters.fromNameAndType(
                          "devices", QueryableStoreTypes.<String, String>keyValueStore())
                      .withPartition(p));
          try (KeyValueIterator<String, String> it = store.all()) {
            while (it.hasNext()) {
              KeyValue<String, String> kv = it.next();
              byte[] key = kv.key.getBytes(StandardCharsets.UTF_8);
              int javaPartition = Utils.toPositive(Utils.murmur2(key)) % partitions;
              sb.append("DUMP\t")
                  .append(kv.key)
                  .append('\t')
                  .append(p)
                  .append('\t')
                  .append(javaPartition)
                  .append('\t')
                  .append(sha256(kv.value))
                  .append('\n');
              n++;
            }
          }
        }
        sb.append("DUMPED\t").append(n);
        print(sb.toString());
        return;
      } catch (InvalidStateStoreException e) {
        if (System.nanoTime() > deadline) {
          print("DUMPED\t-1\t" + e.getMessage());
          return;
        }
        Thread.sleep(100);
      }
    }
  }

  private static String sha256(String s) throws Exception {
    MessageDigest md = MessageDigest.getInstance("SHA-256");
    return HexFormat.of().formatHex(md.digest(s.getBytes(StandardCharsets.UTF_8)));
  }

  private static synchronized void print(String s) {
    OUT.println(s);
  }

  /** Prefixes a record's value with its mde.run_id header and its partition. */
  private static final class Stamp implements FixedKeyProcessor<String, String, String> {
    private FixedKeyProcessorContext<String, String> context;

    @Override
    public void init(FixedKeyProcessorContext<String, String> context) {
      this.context = context;
    }

    @Override
    public void process(FixedKeyRecord<String, String> record) {
      Header h = record.headers().lastHeader("mde.run_id");
      String runId = h == null ? "-" : new String(h.value(), StandardCharsets.UTF_8);
      int partition = context.recordMetadata().map(m -> m.partition()).orElse(-1);
      context.forward(record.withValue(runId + " " + partition + " " + record.value()));
    }
  }
}
