//go:build integration

package e2e

import (
	"strings"
	"testing"
)

// TestRunPublishesTheWholeContract runs the built binary against the fake
// Entra ID and Defender API (public host names through HTTPS_PROXY, TLS),
// Azurite and the real Kafka broker, and checks the README's message format on what a
// consumer reads back.
func TestRunPublishesTheWholeContract(t *testing.T) {
	w := newWorld(t, 3000, 4)
	res := w.run(nil)
	if res.Code != 0 {
		t.Fatalf("exit %d\n%s", res.Code, tail(res.Stderr, 40))
	}
	msgs, rep := w.read(w.Topic)
	if rep.Partitions != 6 {
		t.Fatalf("created topic has %d partitions, want the default 6", rep.Partitions)
	}
	w.assertSnapshot(msgs, rep, runID(t, res.Stderr), 0)

	// The real Azure SDK went through the proxy to the public host names,
	// including instance discovery, and got a token from Entra ID.
	tunnels := w.connect.Tunnels()
	if tunnels["login.microsoftonline.com"] == 0 || tunnels["api.securitycenter.microsoft.com"] == 0 {
		t.Fatalf("HTTPS_PROXY not used: %v", tunnels)
	}
	if w.entra.TokenRequests() == 0 || w.entra.DiscoveryRequests() == 0 {
		t.Fatalf("token requests %d, discovery requests %d", w.entra.TokenRequests(), w.entra.DiscoveryRequests())
	}
	if len(w.defender.Calls()) != 1 {
		t.Fatalf("%d export API calls, want 1", len(w.defender.Calls()))
	}
	if !strings.Contains(res.Stderr, `"records_per_s"`) || !strings.Contains(res.Stderr, `"peak_rss_mb"`) {
		t.Fatalf("no summary figures in the logs")
	}
}
