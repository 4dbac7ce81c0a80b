// Package deploycheck holds only tests: they decode the Kubernetes
// manifests under deploy/kubernetes strictly into the k8s.io/api types
// (an unknown or misspelt field fails), check that they fit together and
// match tvm2kafka's settings, and parse and evaluate the Prometheus alert
// rules under deploy/prometheus with Prometheus's own rule parser and
// PromQL engine.
package deploycheck
