// Package testrig gives integration tests access to the real services that
// scripts/test.sh starts: a one-node Apache Kafka (PLAINTEXT and SASL_SSL
// listeners), Azurite's blob service and, for the tests named TestCluster…,
// the three-broker cluster of scripts/kafka-cluster.sh (ClusterEnv: rolling
// restarts, and listeners reached through a fakes.KafkaProxy).
//
// Everything except this file is built only with the `integration` build tag.
// Tests call Env, which reads the IT_* environment that `scripts/kafka.sh env`
// and `scripts/azurite.sh env` print, and skips the test when it is not set:
//
//	//go:build integration
//
//	func TestSomething(t *testing.T) {
//		rig := testrig.Env(t)
//		topic := rig.NewTopic(t, 6)
//		...
//		recs := rig.ReadAll(t, topic)
//	}
//
// Run them with `scripts/test.sh` (which starts and stops the services), or by
// hand:
//
//	scripts/kafka.sh start && scripts/azurite.sh start
//	eval "$(scripts/kafka.sh env)" "$(scripts/azurite.sh env)"
//	go test -tags integration -p 1 -skip '^TestCluster' ./...
//	scripts/kafka-cluster.sh start && eval "$(scripts/kafka-cluster.sh env)"
//	go test -tags integration -p 1 -run '^TestCluster' ./internal/e2e ./internal/testrig
package testrig
