package main

import (
	"strconv"
	"testing"

	"github.com/tvm2kafka/tvm2kafka/internal/wire"
)

// The command line and the producer accept the same largest message.
func TestOneLimitForTheLargestMessage(t *testing.T) {
	for _, n := range []int{
		wire.MinMaxMessageBytes - 1, wire.MinMaxMessageBytes, 1_000_000,
		wire.MaxMaxMessageBytes, wire.MaxMaxMessageBytes + 1, 100 << 20, 300 << 20,
	} {
		raw := defaultValues()
		raw["KAFKA_BROKERS"] = "127.0.0.1:9092"
		raw["MDE_ACCESS_TOKEN"] = "t0ken-value"
		raw["KAFKA_MAX_MESSAGE_BYTES"] = strconv.Itoa(n)
		_, cmdErr := parseConfig(raw)
		k := wire.Config{Brokers: []string{"127.0.0.1:9092"}, Topic: "t"}
		k.MaxMessageBytes = n
		prodErr := k.Validate()
		if (cmdErr == nil) != (prodErr == nil) {
			t.Errorf("KAFKA_MAX_MESSAGE_BYTES=%d: command line says %v, producer says %v", n, cmdErr, prodErr)
		}
	}
}
