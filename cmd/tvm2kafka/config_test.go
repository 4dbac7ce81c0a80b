package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

func envOf(m map[string]string) lookupFunc {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// resolveRun resolves the settings of run from args and env as
// `tvm2kafka run` does.
func resolveRun(args []string, env map[string]string) (rawValues, error) {
	raw, code, done, err := parseCommandLine("run", settings(), args, envOf(env), printRunUsage, io.Discard, io.Discard)
	if done {
		return nil, fmt.Errorf("command line refused (exit %d)", code)
	}
	return raw, err
}

func TestConfigErrorsExit2BeforeAnyNetworkCall(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	base := map[string]string{
		"MDE_API_URL":      srv.URL,
		"MDE_ACCESS_TOKEN": "tok-abcdef",
		"KAFKA_BROKERS":    strings.TrimPrefix(srv.URL, "http://"),
	}
	cases := []struct {
		name  string
		env   map[string]string
		args  []string
		wants []string // substrings of stderr
	}{
		{"missing brokers", map[string]string{"KAFKA_BROKERS": ""}, nil, []string{"KAFKA_BROKERS", "required"}},
		{"broker without port", map[string]string{"KAFKA_BROKERS": "kafka"}, nil, []string{"KAFKA_BROKERS", "host:port"}},
		{"bad compression", map[string]string{"KAFKA_COMPRESSION": "brotli"}, nil, []string{"KAFKA_COMPRESSION"}},
		{"flag wins over env", map[string]string{"KAFKA_COMPRESSION": "lz4"}, []string{"--kafka-compression", "xz"}, []string{"KAFKA_COMPRESSION"}},
		{"sas hours out of range", map[string]string{"MDE_SAS_VALID_HOURS": "25"}, nil, []string{"MDE_SAS_VALID_HOURS", "1..24"}},
		{"sas hours not a number", map[string]string{"MDE_SAS_VALID_HOURS": "three"}, nil, []string{"MDE_SAS_VALID_HOURS"}},
		{"workers zero", map[string]string{"TVM2KAFKA_WORKERS": "0"}, nil, []string{"TVM2KAFKA_WORKERS"}},
		{"plain http off loopback", map[string]string{"MDE_API_URL": "http://api.example.com"}, nil, []string{"MDE_API_URL", "loopback"}},
		{"no credentials", map[string]string{"MDE_ACCESS_TOKEN": ""}, nil, []string{"no credentials", "MDE_AUTH=managed-identity"}},
		{"secret without tenant", map[string]string{"MDE_ACCESS_TOKEN": "", "AZURE_CLIENT_SECRET": "s3cr3t-value", "AZURE_CLIENT_ID": "c"}, nil, []string{"AZURE_TENANT_ID"}},
		{"bad auth mode", map[string]string{"MDE_AUTH": "kerberos"}, nil, []string{"MDE_AUTH"}},
		{"bad log level", map[string]string{"LOG_LEVEL": "loud"}, nil, []string{"LOG_LEVEL"}},
		{"bad log format", map[string]string{"LOG_FORMAT": "xml"}, nil, []string{"LOG_FORMAT"}},
		{"sasl without user", map[string]string{"KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"}, nil, []string{"KAFKA_SASL"}},
		{"unknown sasl", map[string]string{"KAFKA_SASL_MECHANISM": "GSSAPI", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}, nil, []string{"KAFKA_SASL_MECHANISM"}},
		{"missing CA file", map[string]string{"KAFKA_TLS_CA_FILE": "/nonexistent/ca.pem"}, nil, []string{"KAFKA_TLS_CA_FILE"}},
		{"replication factor zero", map[string]string{"KAFKA_TOPIC_REPLICATION_FACTOR": "0"}, nil, []string{"KAFKA_TOPIC_REPLICATION_FACTOR"}},
		{"unknown export", map[string]string{"MDE_EXPORT": "MachinesExport"}, nil, append([]string{"MDE_EXPORT", `MachinesExport\" is not an export`}, schema.ExportNames()...)},
		{"unknown export in a list", map[string]string{"MDE_EXPORTS": "SoftwareInventoryExport,NoSuchExport"}, nil, []string{"MDE_EXPORTS", `NoSuchExport`, "BrowserExtensionsInventoryExport"}},
		{"export listed twice", map[string]string{"MDE_EXPORTS": "SoftwareInventoryExport, softwareinventoryexport"}, nil, []string{"MDE_EXPORTS", "listed twice"}},
		{"export and exports", map[string]string{"MDE_EXPORTS": "SoftwareInventoryExport", "MDE_EXPORT": "CertificateAssessmentExport"}, nil, []string{"MDE_EXPORTS", "MDE_EXPORT"}},
		{"one topic for several exports", map[string]string{"MDE_EXPORTS": "SoftwareInventoryExport,CertificateAssessmentExport", "KAFKA_TABLE_TOPIC": "table"}, nil, []string{"KAFKA_TABLE_TOPIC", "{export}"}},
		{"several exports for run", map[string]string{"MDE_EXPORTS": "SoftwareInventoryExport,CertificateAssessmentExport"}, nil, []string{"MDE_EXPORTS", "serve"}},
		{"unknown value format", map[string]string{"KAFKA_VALUE_FORMAT": "protobuf"}, nil, []string{"KAFKA_VALUE_FORMAT", "json-schema"}},
		{"avro without a registry", map[string]string{"KAFKA_VALUE_FORMAT": "avro"}, nil, []string{"KAFKA_SCHEMA_REGISTRY_URL", "required", "avro"}},
		{"json-schema without a registry", map[string]string{"KAFKA_VALUE_FORMAT": "json-schema"}, nil, []string{"KAFKA_SCHEMA_REGISTRY_URL", "required"}},
		{"registry token and user", map[string]string{"KAFKA_VALUE_FORMAT": "avro", "KAFKA_SCHEMA_REGISTRY_URL": srv.URL, "KAFKA_SCHEMA_REGISTRY_TOKEN": "t0ken-abc", "KAFKA_SCHEMA_REGISTRY_USERNAME": "u"}, nil, []string{"KAFKA_SCHEMA_REGISTRY_TOKEN", "not both"}},
		{"registry over plain http", map[string]string{"KAFKA_VALUE_FORMAT": "avro", "KAFKA_SCHEMA_REGISTRY_URL": "http://registry.example.com"}, nil, []string{"KAFKA_SCHEMA_REGISTRY_URL", "loopback"}},
		{"registry CA missing", map[string]string{"KAFKA_VALUE_FORMAT": "avro", "KAFKA_SCHEMA_REGISTRY_URL": srv.URL, "KAFKA_SCHEMA_REGISTRY_CA_FILE": "/nonexistent/ca.pem"}, nil, []string{"KAFKA_SCHEMA_REGISTRY_CA_FILE"}},
		{"unknown flag", nil, []string{"--no-such-flag"}, []string{"no-such-flag"}},
		{"stray argument", nil, []string{"extra"}, []string{"unexpected argument"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := maps.Clone(base)
			maps.Copy(env, tc.env)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"run"}, tc.args...), envOf(env), &stdout, &stderr)
			if code != exitUsage {
				t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr.String())
			}
			for _, w := range tc.wants {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr does not mention %q:\n%s", w, stderr.String())
				}
			}
			for _, secret := range []string{"tok-abcdef", "s3cr3t-value"} {
				if strings.Contains(stderr.String(), secret) {
					t.Errorf("stderr shows a secret:\n%s", stderr.String())
				}
			}
		})
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d network calls were made by runs with bad configuration", n)
	}
}

// TestExportsAndTheirTopics: MDE_EXPORT takes each export, spelled in any
// case, with its default topic; MDE_EXPORTS gives every export its own
// topics through {export}.
func TestExportsAndTheirTopics(t *testing.T) {
	base := map[string]string{"MDE_ACCESS_TOKEN": "t", "KAFKA_BROKERS": "localhost:9092"}
	for _, e := range schema.Exports() {
		env := maps.Clone(base)
		env["MDE_EXPORT"] = strings.ToUpper(e.Name)
		raw, err := resolveRun(nil, env)
		if err != nil {
			t.Fatal(err)
		}
		c, err := parseConfig(raw)
		if err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		if c.Azure.Export != e.Name || c.kafka.Topic != e.Topic() || c.runner().Export != e.Name {
			t.Errorf("MDE_EXPORT=%s: export %q, topic %q", env["MDE_EXPORT"], c.Azure.Export, c.kafka.Topic)
		}
	}
	env := maps.Clone(base)
	env["MDE_EXPORTS"] = "SoftwareVulnerabilitiesExport, certificateassessmentexport"
	env["KAFKA_TABLE_TOPIC"] = "mde.{export}.table"
	env["KAFKA_DLQ_TOPIC"] = "dlq.{export}"
	raw, err := resolveRun(nil, env)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range c.exports {
		k := c.forExport(e)
		got = append(got, k.Azure.Export+" "+k.kafka.Topic+" "+k.kafka.TableTopic+" "+k.kafka.DLQTopic)
	}
	want := []string{
		"SoftwareVulnerabilitiesExport mde.vulnerabilities mde.vulnerabilities.table dlq.vulnerabilities",
		"CertificateAssessmentExport mde.certificates mde.certificates.table dlq.certificates",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("exports:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestFlagWinsOverEnvAndDefaults(t *testing.T) {
	raw, err := resolveRun([]string{"--kafka-topic", "from-flag", "--workers", "3"}, map[string]string{
		"KAFKA_TOPIC": "from-env", "KAFKA_DLQ_TOPIC": "dlq-from-env", "TVM2KAFKA_WORKERS": "9",
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"KAFKA_TOPIC": "from-flag", "TVM2KAFKA_WORKERS": "3", "KAFKA_DLQ_TOPIC": "dlq-from-env",
		"MDE_API_URL": "https://api.securitycenter.microsoft.com", "KAFKA_COMPRESSION": "lz4",
	} {
		if raw[k] != want {
			t.Errorf("%s = %q, want %q", k, raw[k], want)
		}
	}
}

func TestSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	if err := os.WriteFile(path, []byte("from-file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	raw, err := resolveRun(nil, map[string]string{
		"AZURE_CLIENT_SECRET_FILE": path, "KAFKA_SASL_PASSWORD_FILE": path,
		"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "KAFKA_BROKERS": "127.0.0.1:1",
		"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u",
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.cred.ClientSecret != "from-file-secret" || cfg.kafka.SASLPassword != "from-file-secret" {
		t.Fatalf("secrets not read from files: %q %q", cfg.cred.ClientSecret, cfg.kafka.SASLPassword)
	}
	if cfg.auth != "client-secret" {
		t.Fatalf("auth = %q", cfg.auth)
	}
	if _, err := resolveRun(nil, map[string]string{"AZURE_CLIENT_SECRET_FILE": filepath.Join(dir, "missing")}); err == nil {
		t.Fatal("a missing secret file was accepted")
	}
}

func TestAuthSelection(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"MDE_ACCESS_TOKEN": "t0ken"}, "token"},
		{map[string]string{"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_CLIENT_SECRET": "s"}, "client-secret"},
		{map[string]string{"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_FEDERATED_TOKEN_FILE": "/var/run/token"}, "workload-identity"},
		{map[string]string{"MDE_AUTH": "managed-identity"}, "managed-identity"},
		{map[string]string{"MDE_AUTH": "managed-identity", "AZURE_CLIENT_ID": "user-assigned"}, "managed-identity"},
	}
	for _, tc := range cases {
		raw := defaultValues()
		raw["KAFKA_BROKERS"] = "127.0.0.1:9092"
		for k, v := range tc.env {
			raw[k] = v
		}
		cfg, err := parseConfig(raw)
		if err != nil {
			t.Fatalf("%v: %v", tc.env, err)
		}
		if cfg.auth != tc.want {
			t.Errorf("%v: auth %q, want %q", tc.env, cfg.auth, tc.want)
		}
	}
}

func TestDefaultScope(t *testing.T) {
	for api, want := range map[string]string{
		"https://api.securitycenter.microsoft.com":        "https://api.securitycenter.microsoft.com/.default",
		"https://eu.api.security.microsoft.com":           "https://api.securitycenter.microsoft.com/.default",
		"https://api-gov.securitycenter.microsoft.us":     "https://api-gov.securitycenter.microsoft.us/.default",
		"https://api-gcc.securitycenter.microsoft.us":     "https://api-gcc.securitycenter.microsoft.us/.default",
		"https://api-us.securitycenter.microsoft.com/api": "https://api.securitycenter.microsoft.com/.default",
	} {
		if got := defaultScope(api); got != want {
			t.Errorf("defaultScope(%s) = %s, want %s", api, got, want)
		}
	}
}

func TestHelpListsEverySettingOnStdout(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"run", "--help"}, envOf(nil), &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if stderr.Len() != 0 {
		t.Errorf("run --help wrote to stderr:\n%s", stderr.String())
	}
	for _, s := range settings() {
		if s.env == "" {
			continue
		}
		if !strings.Contains(stdout.String(), s.env) || !strings.Contains(stdout.String(), "--"+s.flag) {
			t.Errorf("run --help does not document %s / --%s", s.env, s.flag)
		}
	}
	stdout.Reset()
	if code := run(context.Background(), []string{"--help"}, envOf(nil), &stdout, &stderr); code != exitOK {
		t.Fatalf("--help exit %d", code)
	}
	if !strings.Contains(stdout.String(), "KAFKA_BROKERS") || !strings.Contains(stdout.String(), "demo") {
		t.Errorf("tvm2kafka --help misses settings or commands:\n%s", stdout.String())
	}
	stdout.Reset()
	if code := run(context.Background(), []string{"demo", "--help"}, envOf(nil), &stdout, &stderr); code != exitOK || !strings.Contains(stdout.String(), "-devices") {
		t.Errorf("demo --help: exit %d:\n%s", code, stdout.String())
	}
	if code := run(context.Background(), []string{"frobnicate"}, envOf(nil), &stdout, &stderr); code != exitUsage {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

// An unknown flag or a stray argument gets a short error, the flag meant
// when it is close, and a hint: not the whole help, which would scroll the
// error away.
func TestUnknownFlagGetsAShortErrorAndAHint(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"run", "--kafka-broker", "k:9092"}, []string{"flag provided but not defined: --kafka-broker\n", "Did you mean --kafka-brokers?", "tvm2kafka run --help"}},
		{[]string{"run", "--frob=1"}, []string{"tvm2kafka run: flag provided but not defined: --frob\n"}},
		{[]string{"serve", "-frob"}, []string{"tvm2kafka serve: flag provided but not defined: -frob\n"}},
		{[]string{"run", "--no-such-flag-at-all"}, []string{"no-such-flag-at-all", "tvm2kafka run --help"}},
		{[]string{"run", "extra"}, []string{"unexpected argument \"extra\"", "tvm2kafka run --help"}},
		{[]string{"demo", "--devics", "5"}, []string{"Did you mean --devices?", "tvm2kafka demo --help"}},
		{[]string{"frobnicate"}, []string{"unknown command", "tvm2kafka help"}},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), tc.args, envOf(nil), &stdout, &stderr); code != exitUsage {
			t.Errorf("%v: exit %d, want 2", tc.args, code)
		}
		for _, w := range tc.wants {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.args, w, stderr.String())
			}
		}
		if n := strings.Count(stderr.String(), "\n"); n > 4 || strings.Contains(stderr.String(), "KAFKA_TOPIC") {
			t.Errorf("%v: %d lines of error, or the whole help:\n%s", tc.args, n, stderr.String())
		}
		if stdout.Len() != 0 {
			t.Errorf("%v: wrote to stdout: %s", tc.args, stdout.String())
		}
	}
}

func TestLoggerRedactsSecrets(t *testing.T) {
	for _, format := range []string{"json", "console"} {
		var out bytes.Buffer
		log := newLogger(&config{logFormat: format, logLevel: zerolog.DebugLevel, secretsSeen: []string{"hunter2-password"}}, &out)
		log.Error().Str("url", "https://a.blob.core.windows.net/c/p.gz?sv=2020&sig=abc%2Fdef&se=1").
			Str("err", "auth Bearer eyJ0eXAi.abc.def failed with hunter2-password").
			Str("raw", "\xff\xff\xff sig=SECRETSECRET").Msg("x")
		got := out.String()
		for _, bad := range []string{"abc%2Fdef", "sv=2020", "eyJ0eXAi", "hunter2-password", "SECRETSECRET"} {
			if strings.Contains(got, bad) {
				t.Errorf("%s: redacted output still holds %q: %s", format, bad, got)
			}
		}
		if !strings.Contains(got, "https://a.blob.core.windows.net/c/p.gz") {
			t.Errorf("%s: the blob path is gone: %s", format, got)
		}
	}
}

func TestBooleanFlagsStandAlone(t *testing.T) {
	raw, err := resolveRun([]string{"--dry-run", "--kafka-tls=false", "--workers", "2"}, map[string]string{"MDE_ACCESS_TOKEN": "t0ken", "KAFKA_TLS": "true"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Pipeline.DryRun || cfg.kafka.TLS || cfg.workers != 2 {
		t.Fatalf("dryRun %v tls %v workers %d", cfg.Pipeline.DryRun, cfg.kafka.TLS, cfg.workers)
	}
}
