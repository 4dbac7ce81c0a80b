// Package wiretest holds what the tests of several packages need of the
// wire package: a Config with the settings a run would give it.
package wiretest

import (
	"time"

	"github.com/tvm2kafka/tvm2kafka/internal/wire"
)

// Config is a wire.Config for brokers with the values a run has when no
// setting is given (docs/configuration.md), topic "records", and short
// timeouts for tests.
func Config(brokers []string) wire.Config {
	return wire.Config{
		Brokers:                brokers,
		Topic:                  "records",
		Compression:            "lz4",
		TopicPartitions:        6,
		TopicReplicationFactor: -1,
		MaxMessageBytes:        1_000_000,
		RetryMaxElapsed:        2 * time.Minute,
		DialTimeout:            5 * time.Second,
		WriteTimeout:           10 * time.Second,
	}
}
