package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite the README's settings tables from the declarations")

// readmeTables are the README's tables generated from the declarations:
// the text between "<!-- settings: NAME -->" and "<!-- /settings -->".
var readmeTables = map[string][]setting{
	"run":    settings(),
	"verify": onlyGroup(declared[verifySettings](), "Verify"),
}

func onlyGroup(list []setting, group string) []setting {
	var out []setting
	for _, s := range list {
		if s.group == group {
			out = append(out, s)
		}
	}
	return out
}

// The settings tables of the documentation (README.md and docs/) are
// generated from the declarations (settings.go); `go test ./cmd/tvm2kafka
// -run TestReadmeSettingsTables -update-readme` rewrites them.
func TestReadmeSettingsTables(t *testing.T) {
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	texts := map[string]string{}
	for _, p := range append(pages, "../../README.md") {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		texts[p] = string(b)
	}
	changed := map[string]bool{}
	for name, list := range readmeTables {
		begin, end := "<!-- settings: "+name+" -->\n", "<!-- /settings -->"
		page := ""
		for p, text := range texts {
			if strings.Contains(text, begin) {
				page = p
			}
		}
		if page == "" {
			t.Errorf("no page of the documentation has %q", begin)
			continue
		}
		text := texts[page]
		i := strings.Index(text, begin) + len(begin)
		j := strings.Index(text[i:], end)
		if j < 0 {
			t.Fatalf("%s: %q is not closed by %q", page, begin, end)
		}
		want := settingsTable(list)
		if got := text[i : i+j]; got != want {
			if *updateReadme {
				texts[page], changed[page] = text[:i]+want+text[i+j:], true
				continue
			}
			t.Errorf("%s: the %s settings table differs from the declaration; run go test ./cmd/tvm2kafka -run TestReadmeSettingsTables -update-readme\nwant:\n%s", page, name, want)
		}
	}
	for page := range changed {
		if err := os.WriteFile(page, []byte(texts[page]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Every declaration is complete and consistent: unique names, defaults
// that pass their own checks, an enum's default among its values.
func TestDeclarations(t *testing.T) {
	for name, list := range map[string][]setting{
		"run": settings(), "verify": declared[verifySettings](), "demo": declared[demoSettings](),
	} {
		seen := map[string]bool{}
		for _, s := range list {
			for _, n := range []string{s.env, "--" + s.flag} {
				if n != "" && seen[n] {
					t.Errorf("%s: %s declared twice", name, n)
				}
				seen[n] = true
			}
			if len(s.enum) > 0 && s.def != "" && indexFold(s.enum, s.def) < 0 {
				t.Errorf("%s: %s: default %q is not among %v", name, s.key(), s.def, s.enum)
			}
			if (s.min == "") != (s.max == "") {
				t.Errorf("%s: %s: a range needs min and max", name, s.key())
			}
			if s.secret && s.env == "" {
				t.Errorf("%s: --%s: a secret needs a variable (secrets are never needed on the command line)", name, s.flag)
			}
		}
	}
	var r runSettings
	if errs := decode(settings(), defaultValues(), &r); len(errs) > 0 {
		t.Errorf("run's defaults: %v", errs)
	}
	var v verifySettings
	if errs := decode(declared[verifySettings](), defaultsOf(declared[verifySettings]()), &v); len(errs) > 0 {
		t.Errorf("verify's defaults: %v", errs)
	}
	var d demoSettings
	if errs := decode(declared[demoSettings](), defaultsOf(declared[demoSettings]()), &d); len(errs) > 0 {
		t.Errorf("demo's defaults: %v", errs)
	}
}

// Every library field a setting's names tag lists is one the libraries
// ask for, and every such key resolves to exactly one setting.
func TestSettingNamesResolveEveryKey(t *testing.T) {
	n := settingNames()
	for key, want := range map[string]string{
		"wire.Brokers": "KAFKA_BROKERS", "wire.TLSKeyPassword.file": "KAFKA_TLS_KEY_PASSWORD_FILE", "wire.RetryMaxElapsed": "TVM2KAFKA_RETRY_MAX_ELAPSED",
		"producer.MaxMessageBytes": "KAFKA_MAX_MESSAGE_BYTES", "runner.Lease": "TVM2KAFKA_LEASE", "source.BaseURL": "MDE_API_URL",
		"source.ClientSecret.file": "AZURE_CLIENT_SECRET_FILE",
	} {
		if got := n.Of(key); got != want {
			t.Errorf("%s names %q, want %q", key, got, want)
		}
	}
	seen := map[string]string{}
	for _, s := range settings() {
		for _, k := range s.names {
			if other, dup := seen[k]; dup {
				t.Errorf("%s is listed by %s and %s", k, other, s.env)
			}
			seen[k] = s.env
		}
	}
	if n.Of("wire.NoSuchField") != "NoSuchField" {
		t.Errorf("an unknown key names %q", n.Of("wire.NoSuchField"))
	}
}

// decode checks the type, enum and range of every setting and names the
// setting in each error; enums are case-insensitive and stored as
// declared; an unset tri-state stays unset.
func TestDecode(t *testing.T) {
	list := settings()
	raw := defaultValues()
	raw["KAFKA_SASL_MECHANISM"] = "scram-sha-512"
	raw["LOG_LEVEL"] = "DEBUG"
	raw["TVM2KAFKA_LEASE"] = "5m"
	var in runSettings
	if errs := decode(list, raw, &in); len(errs) > 0 {
		t.Fatal(errs)
	}
	if in.Kafka.SASLMechanism != "SCRAM-SHA-512" || in.Logs.Level != "debug" || in.Kafka.TLS != nil ||
		in.Runs.Lease.Minutes() != 5 || in.Azure.SASValidHours != 0 || in.Pipeline.Workers != 0 {
		t.Fatalf("decoded %+v", in)
	}
	for _, level := range []string{"trace", "debug", "info", "warn", "error", "fatal", "panic", "disabled"} {
		r := defaultValues()
		r["LOG_LEVEL"] = level
		var got runSettings
		if errs := decode(list, r, &got); len(errs) > 0 || got.Logs.Level != level {
			t.Errorf("LOG_LEVEL=%s, a zerolog level: %q, %v", level, got.Logs.Level, errs)
		}
	}
	raw["KAFKA_TLS"] = "false"
	if errs := decode(list, raw, &in); len(errs) > 0 || in.Kafka.TLS == nil || *in.Kafka.TLS {
		t.Fatalf("KAFKA_TLS=false: %v %v", in.Kafka.TLS, errs)
	}
	for env, bad := range map[string]string{
		"KAFKA_COMPRESSION": "brotli", "MDE_AUTH": "kerberos", "LOG_FORMAT": "", "MDE_SAS_VALID_HOURS": "25",
		"TVM2KAFKA_WORKERS": "x", "TVM2KAFKA_INTERVAL": "-1h", "TVM2KAFKA_FORCE": "yes please", "KAFKA_TLS": "maybe",
		"KAFKA_TOPIC_PARTITIONS": "0",
	} {
		r := defaultValues()
		r[env] = bad
		errs := decode(list, r, &runSettings{})
		if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), env+": ") {
			t.Errorf("%s=%q: %v, want one error naming %s", env, bad, errs, env)
		}
	}
	// A flag-only setting is named by its flag.
	vl := declared[verifySettings]()
	r := defaultsOf(vl)
	r["--output"] = "yaml"
	if errs := decode(vl, r, &verifySettings{}); len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "--output: ") {
		t.Errorf("--output=yaml: %v", errs)
	}
}

// settingsTable is the README's table of the settings of list (Markdown).
func settingsTable(list []setting) string {
	var b strings.Builder
	b.WriteString("| variable | flag | default | meaning |\n|---|---|---|---|\n")
	code := func(s string) string { return "`" + s + "`" }
	for _, s := range list {
		env := "—"
		if s.env != "" {
			env = code(s.env)
		}
		def, value := s.defaultText()
		switch {
		case value:
			def = code(def)
		case def == "-":
			def = "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", env, code("--"+s.flag), def, strings.ReplaceAll(s.describe(code), "|", `\|`))
	}
	return b.String()
}
