// Package e2e holds the end-to-end tests of the built tvm2kafka binary
// against the real Kafka broker and Azurite of the test rig and the fake
// Entra ID and Defender API (build tag integration; scripts/test.sh runs
// them). It has no code of its own.
package e2e
