package main

import (
	"strconv"
	"testing"

	"github.com/tvm2kafka/tvm2kafka/producer"
)

// The command line and the producer accept the same largest message.
func TestOneLimitForTheLargestMessage(t *testing.T) {
	for _, n := range []int{
		producer.MinMaxMessageBytes - 1, producer.MinMaxMessageBytes, 1_000_000,
		producer.MaxMaxMessageBytes, producer.MaxMaxMessageBytes + 1, 100 << 20, 300 << 20,
	} {
		raw := defaultValues()
		raw["KAFKA_BROKERS"] = "127.0.0.1:9092"
		raw["MDE_ACCESS_TOKEN"] = "t0ken-value"
		raw["KAFKA_MAX_MESSAGE_BYTES"] = strconv.Itoa(n)
		_, cmdErr := parseConfig(raw)
		k := producer.DefaultConfig()
		k.Brokers = []string{"127.0.0.1:9092"}
		k.MaxMessageBytes = n
		prodErr := k.Validate()
		if (cmdErr == nil) != (prodErr == nil) {
			t.Errorf("KAFKA_MAX_MESSAGE_BYTES=%d: command line says %v, producer says %v", n, cmdErr, prodErr)
		}
	}
}
