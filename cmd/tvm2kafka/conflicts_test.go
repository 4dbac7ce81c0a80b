package main

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Settings that contradict each other are refused with exit 2 and the
// reason, before any network call; settings an explicit choice leaves
// unused are warned about at the start of the run.
func TestConflictingSettings(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("from-file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := map[string]string{"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "KAFKA_BROKERS": "127.0.0.1:9092", "LOG_FORMAT": "console"}
	for _, tc := range []struct {
		name  string
		env   map[string]string
		wants []string
	}{
		{"token and client secret", map[string]string{"MDE_ACCESS_TOKEN": "t0ken-value", "AZURE_CLIENT_SECRET": "s3cr3t-value"},
			[]string{"MDE_AUTH", "MDE_ACCESS_TOKEN, AZURE_CLIENT_SECRET", "ambiguous"}},
		{"secret and certificate", map[string]string{"AZURE_CLIENT_SECRET": "s3cr3t-value", "AZURE_CLIENT_CERTIFICATE_PATH": "testdata/client.pem"},
			[]string{"AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH"}},
		{"variable and its file", map[string]string{"AZURE_CLIENT_SECRET": "s3cr3t-value", "AZURE_CLIENT_SECRET_FILE": secretFile},
			[]string{"AZURE_CLIENT_SECRET and AZURE_CLIENT_SECRET_FILE are both set"}},
		{"TLS off with a CA file", map[string]string{"AZURE_CLIENT_SECRET": "s3cr3t-value", "KAFKA_TLS": "false", "KAFKA_TLS_CA_FILE": "testdata/client.pem"},
			[]string{"KAFKA_TLS", "false, but KAFKA_TLS_CA_FILE"}},
		{"SASL user with OAUTHBEARER", map[string]string{"AZURE_CLIENT_SECRET": "s3cr3t-value", "KAFKA_SASL_MECHANISM": "oauthbearer", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p4ssword"},
			[]string{"KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD: not used with KAFKA_SASL_MECHANISM=OAUTHBEARER"}},
		{"OAUTHBEARER with a Defender token", map[string]string{"MDE_ACCESS_TOKEN": "t0ken-value", "KAFKA_SASL_MECHANISM": "OAUTHBEARER"},
			[]string{"KAFKA_SASL_MECHANISM", "MDE_ACCESS_TOKEN is a token for the Defender API only"}},
		{"OAUTHBEARER in clear text", map[string]string{"AZURE_CLIENT_SECRET": "s3cr3t-value", "KAFKA_SASL_MECHANISM": "OAUTHBEARER", "KAFKA_BROKERS": "kafka.example.com:9092"},
			[]string{"KAFKA_TLS", "TLS is required"}},
		{"key password without key", map[string]string{"AZURE_CLIENT_SECRET": "s3cr3t-value", "KAFKA_TLS": "true", "KAFKA_TLS_KEY_PASSWORD": "p4ssword"},
			[]string{"KAFKA_TLS_KEY_PASSWORD", "no KAFKA_TLS_KEY_FILE"}},
		{"bad topic config", map[string]string{"AZURE_CLIENT_SECRET": "s3cr3t-value", "KAFKA_TOPIC_CONFIG": "retention.ms=1,cleanup.policy"},
			[]string{"KAFKA_TOPIC_CONFIG", `"cleanup.policy" is not key=value`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := maps.Clone(base)
			maps.Copy(env, tc.env)
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), []string{"run"}, envOf(env), &stdout, &stderr); code != exitUsage {
				t.Fatalf("exit %d, want 2:\n%s", code, stderr.String())
			}
			for _, w := range tc.wants {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			for _, secret := range []string{"t0ken-value", "s3cr3t-value", "p4ssword", "from-file-secret"} {
				if strings.Contains(stderr.String(), secret) {
					t.Errorf("stderr shows a secret:\n%s", stderr.String())
				}
			}
		})
	}
}

func TestExplicitChoiceWarnsAboutUnusedSettings(t *testing.T) {
	raw := defaultValues()
	for k, v := range map[string]string{"KAFKA_BROKERS": "127.0.0.1:9092", "MDE_AUTH": "token", "MDE_ACCESS_TOKEN": "t0ken-value",
		"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_CLIENT_SECRET": "s3cr3t-value", "KAFKA_OAUTH_SCOPE": "api://x/.default"} {
		raw[k] = v
	}
	cfg, err := parseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(cfg.warnings, "\n")
	for _, want := range []string{"MDE_AUTH=token: AZURE_CLIENT_SECRET is set but not used", "KAFKA_OAUTH_SCOPE is set but KAFKA_SASL_MECHANISM is not OAUTHBEARER"} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings %q lack %q", got, want)
		}
	}
	// A flag wins over the variable and over its _FILE: no conflict.
	r, err := resolveRun([]string{"--azure-client-secret", "from-flag-value"}, map[string]string{"AZURE_CLIENT_SECRET": "a-value", "AZURE_CLIENT_SECRET_FILE": "/nonexistent"})
	if err != nil || r["AZURE_CLIENT_SECRET"] != "from-flag-value" {
		t.Fatalf("flag over variable and file: %q, %v", r["AZURE_CLIENT_SECRET"], err)
	}
}

// OAUTHBEARER's scope defaults to the Event Hubs convention: the first
// broker's host.
func TestOAuthScopeDefault(t *testing.T) {
	raw := defaultValues()
	for k, v := range map[string]string{"KAFKA_BROKERS": "myns.servicebus.windows.net:9093,other:9093", "KAFKA_SASL_MECHANISM": "OAUTHBEARER", "KAFKA_TLS": "true",
		"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_CLIENT_SECRET": "s3cr3t-value"} {
		raw[k] = v
	}
	cfg, err := parseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.kafkaScope != "https://myns.servicebus.windows.net/.default" {
		t.Fatalf("scope %q", cfg.kafkaScope)
	}
	raw["KAFKA_OAUTH_SCOPE"] = "api://kafka/.default"
	if cfg, err = parseConfig(raw); err != nil || cfg.kafkaScope != "api://kafka/.default" {
		t.Fatalf("scope %q, %v", cfg.kafkaScope, err)
	}
}

func TestTopicConfig(t *testing.T) {
	got, err := parseTopicConfig(" retention.ms=604800000, cleanup.policy=compact ,min.insync.replicas=2")
	if err != nil || len(got) != 3 || got["cleanup.policy"] != "compact" || got["retention.ms"] != "604800000" {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"retention.ms", "=1", "Retention.MS=1", "a=1,a=2", "a=1,,b=2"} {
		if _, err := parseTopicConfig(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
