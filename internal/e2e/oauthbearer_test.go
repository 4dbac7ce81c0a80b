//go:build integration

package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tvm2kafka/tvm2kafka/internal/fakes"
	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
)

// oauthWorld is a world whose fake Entra ID signs its tokens with the
// rig's OAUTHBEARER key, so that the rig's broker, which validates JWTs
// against that key's JWKS (audience https://127.0.0.1, the rig's issuer),
// accepts the tokens azidentity gets from it. It returns the environment
// of a run that publishes through the SASL_SSL listener with OAUTHBEARER.
func oauthWorld(t *testing.T, devices, parts int) (*world, map[string]string) {
	t.Helper()
	keyFile, kid, issuer := os.Getenv("IT_KAFKA_OAUTH_KEY_FILE"), os.Getenv("IT_KAFKA_OAUTH_KID"), os.Getenv("IT_KAFKA_OAUTH_ISSUER")
	w := newWorld(t, devices, parts)
	if keyFile == "" || kid == "" || issuer == "" {
		t.Fatal("IT_KAFKA_OAUTH_KEY_FILE, IT_KAFKA_OAUTH_KID, IT_KAFKA_OAUTH_ISSUER are not set: start the rig with scripts/kafka.sh")
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.entra.SignTokens(key, kid, issuer); err != nil {
		t.Fatal(err)
	}
	return w, map[string]string{
		"KAFKA_BROKERS":        w.rig.SASLBrokerList(),
		"KAFKA_SASL_MECHANISM": "OAUTHBEARER",
		"KAFKA_TLS_CA_FILE":    w.rig.CAFile,
	}
}

// kafkaScopes counts the token requests for the brokers' scope.
func kafkaScopes(w *world, scope string) int {
	n := 0
	for _, s := range w.entra.Scopes() {
		if strings.Fields(s)[0] == scope {
			n++
		}
	}
	return n
}

// TestOAuthBearerToTheBroker: KAFKA_SASL_MECHANISM=OAUTHBEARER publishes
// through the broker's SASL_SSL listener with a token that azidentity got
// from Entra ID with the same client secret as the Defender API's token,
// for the default scope https://<first broker host>/.default; the broker
// validates the JWT's signature, audience and issuer. A token for another
// audience is refused with a message that says what to check, before the
// export API is called.
func TestOAuthBearerToTheBroker(t *testing.T) {
	t.Run("publishes", func(t *testing.T) {
		w, env := oauthWorld(t, 1200, 3)
		// The topic the run creates gets KAFKA_TOPIC_CONFIG.
		env["KAFKA_TOPIC_CONFIG"] = "retention.ms=86400000,max.message.bytes=2000000"
		res := w.run(env)
		mustComplete(t, res)
		msgs, rep := w.read(w.Topic)
		w.assertSnapshot(msgs, rep, runID(t, res.Stderr), 0)
		if n := kafkaScopes(w, "https://127.0.0.1/.default"); n == 0 {
			t.Fatalf("no token for the brokers' default scope; scopes asked: %v", w.entra.Scopes())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rc, err := w.rig.Admin(t).DescribeTopicConfigs(ctx, w.Topic)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, r := range rc {
			for _, c := range r.Configs {
				if c.Value != nil {
					got[c.Key] = *c.Value
				}
			}
		}
		if got["retention.ms"] != "86400000" || got["max.message.bytes"] != "2000000" {
			t.Errorf("created topic's configs: retention.ms=%q max.message.bytes=%q", got["retention.ms"], got["max.message.bytes"])
		}
	})
	t.Run("wrong audience", func(t *testing.T) {
		w, env := oauthWorld(t, 100, 1)
		env["KAFKA_OAUTH_SCOPE"] = "https://wrong-namespace.servicebus.windows.net/.default"
		res := w.run(env)
		if res.Code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", res.Code, tail(res.Stderr, 20))
		}
		for _, want := range []string{"refused the OAUTHBEARER token", `audience \"https://wrong-namespace.servicebus.windows.net\"`, "KAFKA_OAUTH_SCOPE"} {
			if !strings.Contains(res.Stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, tail(res.Stderr, 20))
			}
		}
		if n := len(w.defender.Calls()); n != 0 {
			t.Errorf("%d export API calls: the Kafka check comes first", n)
		}
		if s := summaryOf(t, res.Stderr); s["complete"] != false || s["exit_code"] != float64(1) {
			t.Errorf("summary %v", s)
		}
	})
}

// TestOAuthBearerTokenRefreshedBeforeExpiry: tokens live 12 s and the
// broker ends a session when its token expires (connections.max.reauth.ms).
// A run held up mid-snapshot for longer than a token's lifetime goes on
// after it without a failed write: connections retire before their token
// expires and new ones authenticate with a fresh token.
func TestOAuthBearerTokenRefreshedBeforeExpiry(t *testing.T) {
	const lifetime = 12 * time.Second
	w, env := oauthWorld(t, 1500, 3)
	w.entra.SetTokenLifetime(lifetime) // under MSAL's 5-minute margin: every GetToken asks Entra ID
	hold := make(chan struct{})
	released := false
	release := func() {
		if !released {
			released = true
			close(hold)
		}
	}
	t.Cleanup(release)
	w.blobProx.Inject(partName(w, 1), fakes.Fault{Hold: hold})
	began := time.Now()
	p := w.start(merge(env, map[string]string{"TVM2KAFKA_WORKERS": "1"}))
	testutil.Poll(t, time.Minute, "the held part", func() bool { return w.blobProx.Held() == 1 })
	// The behaviour under test is bound to the clock: the first tokens
	// must have expired before the part goes on.
	testutil.Poll(t, 2*lifetime, "the first Kafka token's expiry", func() bool { return time.Since(began) > lifetime+time.Second })
	first := kafkaScopes(w, "https://127.0.0.1/.default")
	release()
	res := w.finish(p, 2*time.Minute)
	mustComplete(t, res)
	msgs, rep := w.read(w.Topic)
	w.assertSnapshot(msgs, rep, runID(t, res.Stderr), 0)
	if n := kafkaScopes(w, "https://127.0.0.1/.default"); n <= first {
		t.Errorf("no new Kafka token after the first ones expired (%d before, %d after)", first, n)
	}
	// No warning or error of the run mentions a retry, SASL or a cut
	// connection (the first line lists the settings, SASL mechanism
	// included: only warnings and errors count).
	for _, line := range strings.Split(res.Stderr, "\n") {
		if !strings.Contains(line, `"level":"warn"`) && !strings.Contains(line, `"level":"error"`) {
			continue
		}
		for _, bad := range []string{"produce failed; retrying", "SASL", "EOF"} {
			if strings.Contains(line, bad) {
				t.Errorf("a write met an expired session (%q): %s", bad, line)
			}
		}
	}
}
