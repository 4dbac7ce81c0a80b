package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tvm2kafka/tvm2kafka/internal/synth"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// The exports' page (docs/exports.md) and the README's table of exports
// are generated from the declaration (schema.Exports) and the synthetic
// data; `go test ./cmd/tvm2kafka -run TestExportsDocs -update-readme`
// rewrites them.
func TestExportsDocs(t *testing.T) {
	for page, gen := range map[string]func() string{"../../docs/exports.md": exportsPage, "../../README.md": exportsTable} {
		checkGenerated(t, page, "exports", gen(), "TestExportsDocs")
	}
}

// checkGenerated compares the block of page between <!-- name --> and
// <!-- /name --> with want, and rewrites it with -update-readme.
func checkGenerated(t *testing.T, page, name, want, test string) {
	t.Helper()
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	begin, end := "<!-- "+name+" -->\n", "<!-- /"+name+" -->"
	i := strings.Index(text, begin)
	j := strings.Index(text[i+len(begin):], end)
	if i < 0 || j < 0 {
		t.Fatalf("%s: no %q … %q", page, begin, end)
	}
	i += len(begin)
	if text[i:i+j] == want {
		return
	}
	if *updateReadme {
		if err := os.WriteFile(page, []byte(text[:i]+want+text[i+j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s: the generated block %q differs from the code; run go test ./cmd/tvm2kafka -run %s -update-readme", page, name, test)
}

func exportsTable() string {
	var b strings.Builder
	b.WriteString("| `MDE_EXPORT` | a record is | natural key (`mde.key`, the table topic's key) | default topic | permission |\n|---|---|---|---|---|\n")
	for _, e := range schema.Exports() {
		fmt.Fprintf(&b, "| [`%s`](docs/exports.md#%s) | %s | %s | `%s` | `%s` |\n", e.Name, strings.ToLower(e.Name), e.Record, codeList(e.Key), e.Topic(), e.Permission)
	}
	return b.String()
}

func codeList(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = "`" + c + "`"
	}
	return strings.Join(q, ", ")
}

// sqlType is a column's type in ksqlDB and in Flink SQL.
func sqlType(t schema.ColumnType) (ksql, flink string) {
	switch t {
	case schema.TypeInt:
		return "BIGINT", "BIGINT"
	case schema.TypeDouble:
		return "DOUBLE", "DOUBLE"
	case schema.TypeBool:
		return "BOOLEAN", "BOOLEAN"
	case schema.TypeStrings:
		return "ARRAY<VARCHAR>", "ARRAY<STRING>"
	}
	return "VARCHAR", "STRING"
}

func exportsPage() string {
	var b strings.Builder
	for _, e := range schema.Exports() {
		short := strings.ReplaceAll(e.Short, ".", "_")
		opts := synth.Options{Export: e.Name, Devices: synth.RowsPerDevice(e.Name), Parts: 1, Seed: 1}
		line := synth.Record(opts, 0)
		_, key, _ := schema.NewKeys(e.Key).Read(line)
		per := "one record per device"
		if e.ManyPerDevice() {
			per = "many records per device"
		}
		fmt.Fprintf(&b, "## %s\n\n", e.Name)
		fmt.Fprintf(&b, "`GET /api/machines/%s` — a record is %s (%s). Default topic `%s`; the application needs `%s`. Part files under `…/%s/json/OrgId=…/_RbacGroupId=…/part-….json.gz`.\n\n",
			e.Name, e.Record, per, e.Topic(), e.Permission, e.Folder)
		fmt.Fprintf(&b, "- record key: `DeviceId`; natural key (`mde.key` header, table topic key): %s\n", codeList(e.Key))
		var cols []string
		for _, c := range e.Columns {
			cols = append(cols, fmt.Sprintf("`%s` (%s)", c.Name, c.Type))
		}
		fmt.Fprintf(&b, "- documented columns: %s\n\n", strings.Join(cols, ", "))
		fmt.Fprintf(&b, "A line (synthetic, `demo --export %s`):\n\n```json\n%s\n```\n\n", e.Name, line)
		fmt.Fprintf(&b, "Its `mde.key`%s:\n\n```\n%s\n```\n\n", map[bool]string{true: " and table key", false: " and table key (the DeviceId itself)"}[e.ManyPerDevice()], key)

		// ksqlDB.
		var kcols, fcols []string
		for _, c := range e.Columns {
			kt, ft := sqlType(c.Type)
			pk := ""
			for _, k := range e.Key {
				if k == c.Name {
					pk = " PRIMARY KEY"
				}
			}
			kcols = append(kcols, fmt.Sprintf("  `%s` %s%s", c.Name, kt, pk))
			fcols = append(fcols, fmt.Sprintf("  `%s` %s", c.Name, ft))
		}
		keyFormat := "KAFKA"
		if e.ManyPerDevice() {
			keyFormat = "JSON"
		}
		fmt.Fprintf(&b, "ksqlDB, over the table topic (`KAFKA_TABLE_TOPIC=mde.{export}.table`):\n\n```sql\nCREATE TABLE %s (\n%s\n) WITH (KAFKA_TOPIC='%s.table', KEY_FORMAT='%s', VALUE_FORMAT='JSON');\n```\n\n",
			short, strings.Join(kcols, ",\n"), e.Topic(), keyFormat)
		keyFmt := "'key.format' = 'raw'"
		if e.ManyPerDevice() {
			keyFmt = "'key.format' = 'json'"
		}
		fmt.Fprintf(&b, "Flink SQL, `upsert-kafka`:\n\n```sql\nCREATE TABLE %s (\n%s,\n  PRIMARY KEY (%s) NOT ENFORCED\n) WITH (\n  'connector' = 'upsert-kafka',\n  'topic' = '%s.table',\n  'properties.bootstrap.servers' = 'kafka:9092',\n  %s,\n  'value.format' = 'json',\n  'value.fields-include' = 'ALL'\n);\n```\n\n",
			short, strings.Join(fcols, ",\n"), "`"+strings.Join(e.Key, "`, `")+"`", e.Topic(), keyFmt)
	}
	return b.String()
}
