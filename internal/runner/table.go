package runner

import (
	"context"
	"errors"

	"github.com/rs/zerolog"

	"github.com/tvm2kafka/tvm2kafka/internal/table"
	"github.com/tvm2kafka/tvm2kafka/internal/wire"
	"github.com/tvm2kafka/tvm2kafka/producer"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// tableTopic is the table topic of a run: checked or
// created before the export API is called, read back once the export is
// known (while the records topic's tail is checked; cancelled when the run
// publishes nothing), and updated by the snapshot as its Observer.
type tableTopic struct {
	k      *wire.Kafka
	topic  string
	writer *wire.KeyedWriter
	table  *table.Table // once read back

	loading chan error // the read-back's result (startLoad)
	cancel  context.CancelFunc
}

// openTable makes sure the table topic exists and is compacted, before
// any export API call. A topic that is not compacted is a
// *wire.PolicyError: a configuration error.
func openTable(ctx context.Context, cfg Config, k *wire.Kafka, log zerolog.Logger) (*tableTopic, error) {
	topic := cfg.Kafka.TableTopic
	n, created, err := k.EnsureCompacted(ctx, topic, cfg.Kafka.TopicPartitions, cfg.Kafka.TopicReplicationFactor)
	if err != nil {
		var ce *wire.PolicyError
		if errors.As(err, &ce) {
			log.Error().Err(err).Msg("configuration error: nothing was published")
			return nil, err
		}
		log.Error().Err(err).Str("table_topic", topic).Msg("kafka: cannot use the table topic; nothing was published")
		return nil, err
	}
	w := k.NewKeyedWriter(topic, n)
	log.Info().Str("table_topic", topic).Int("partitions", n).Bool("created", created).Msg("table topic ready")
	return &tableTopic{k: k, topic: topic, writer: w}, nil
}

// startLoad starts reading the table back for the run that is about to
// publish manifest, while the run checks the records topic's tail (which
// waits on the brokers; the read-back keeps the CPU busy). Exactly one of
// loaded or cancelLoad must follow.
func (tt *tableTopic) startLoad(ctx context.Context, manifest schema.Manifest, runID string, log zerolog.Logger) {
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	tt.loading, tt.cancel = done, cancel
	go func() {
		t, err := table.New(table.Config{
			Topic: tt.topic, Export: manifest.Export, GeneratedTime: manifest.GeneratedTime, RunID: runID,
			Kafka: tt.k, Writer: tt.writer, Logger: log,
		})
		if err == nil {
			if err = t.Load(lctx); err == nil {
				tt.table = t
			}
		}
		done <- err
	}()
}

// loaded waits for the read-back started by startLoad and returns the
// table as the snapshot's Observer.
func (tt *tableTopic) loaded() (producer.Observer, error) {
	// The read-back's context stays live: the table's writes during the
	// snapshot derive from it.
	if err := <-tt.loading; err != nil {
		return nil, err
	}
	tt.table.LogLoad()
	return tt.table, nil
}

// cancelLoad stops the read-back started by startLoad (the run publishes
// nothing) and waits for it.
func (tt *tableTopic) cancelLoad() {
	tt.cancel()
	<-tt.loading
}

// close ends the run's table update and closes its writer.
func (tt *tableTopic) close() {
	if tt.table != nil {
		tt.table.Close()
	}
	if tt.cancel != nil {
		tt.cancel()
	}
	_ = tt.writer.Close()
}
