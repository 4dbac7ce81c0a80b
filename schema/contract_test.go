package schema

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestBlobPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://acct.blob.core.windows.net/c/part-00000.json.gz?sv=2020&sig=abc", "https://acct.blob.core.windows.net/c/part-00000.json.gz"},
		{"https://acct.blob.core.windows.net/c/p.json.gz", "https://acct.blob.core.windows.net/c/p.json.gz"},
		{"https://h/p#frag?sig=x", "https://h/p"},
		{"https://h/p?a#b", "https://h/p"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := BlobPath(tc.in); got != tc.want {
			t.Errorf("BlobPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNewManifest(t *testing.T) {
	const base = "https://acct.blob.core.windows.net/export/InfoGatheringExport/json/OrgId=o/_RbacGroupId=1/"
	urls := []string{
		base + "part-00002-x.c000.json.gz?sv=1&sig=C",
		base + "part-00000-x.c000.json.gz?sv=1&sig=A",
		base + "part-00001-x.c000.json.gz?sv=1&sig=B",
	}
	m, err := NewManifest(ExportInfoGathering, "2024-05-01T04:00:00Z", urls)
	if err != nil {
		t.Fatal(err)
	}
	if m.Export != ExportInfoGathering || m.GeneratedTime != "2024-05-01T04:00:00Z" || len(m.Parts) != 3 {
		t.Fatalf("manifest %+v", m)
	}
	for i, p := range m.Parts {
		wantPath := base + "part-0000" + itoa(i) + "-x.c000.json.gz"
		if p.Index != i || p.Path != wantPath || p.URL != wantPath+"?sv=1&sig="+string(rune('A'+i)) {
			t.Errorf("part %d: %+v", i, p)
		}
	}
	// Indexes are stable when the same blobs come back with new SAS tokens
	// in another order.
	again, err := NewManifest(ExportInfoGathering, "t", []string{
		base + "part-00001-x.c000.json.gz?sig=new1", base + "part-00000-x.c000.json.gz?sig=new0", base + "part-00002-x.c000.json.gz?sig=new2",
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range again.Parts {
		if again.Parts[i].Path != m.Parts[i].Path || again.Parts[i].Index != i {
			t.Errorf("part %d not stable: %+v vs %+v", i, again.Parts[i], m.Parts[i])
		}
	}

	empty, err := NewManifest(ExportInfoGathering, "t", nil)
	if err != nil || len(empty.Parts) != 0 {
		t.Fatalf("empty: %+v, %v", empty, err)
	}
}

func TestNewManifestErrors(t *testing.T) {
	const secret = "sig=SECRETSIGNATURE"
	tests := []struct {
		name   string
		urls   []string
		index  int
		reason string
	}{
		{"relative", []string{"/c/p.gz?" + secret}, 0, "not an absolute http(s) URL"},
		{"ftp", []string{"https://h/a?x", "ftp://h/p.gz?" + secret}, 1, "not an absolute http(s) URL"},
		{"no host", []string{"https:///p.gz?" + secret}, 0, "not an absolute http(s) URL"},
		{"unparsable", []string{"https://h/%zz?" + secret}, 0, "not an absolute http(s) URL"},
		{"duplicate path", []string{"https://h/a?sig=1", "https://h/b", "https://h/a?" + secret}, 2, "duplicate blob path"},
	}
	for _, tc := range tests {
		_, err := NewManifest(ExportInfoGathering, "t", tc.urls)
		var me *ManifestError
		if !errors.As(err, &me) {
			t.Errorf("%s: error %v is not a *ManifestError", tc.name, err)
			continue
		}
		if me.Index != tc.index || me.Reason != tc.reason || me.Path != BlobPath(tc.urls[tc.index]) {
			t.Errorf("%s: got %+v", tc.name, me)
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: error %q leaks the SAS query", tc.name, err)
		}
	}
	err := (&ManifestError{Index: 12, Path: "https://h/p", Reason: "duplicate blob path"}).Error()
	if err != "export file 12 (https://h/p): duplicate blob path" {
		t.Errorf("Error() = %q", err)
	}
}

func TestMarkerJSON(t *testing.T) {
	n := int64(5)
	end, err := json.Marshal(Marker{Kind: MarkerEnd, Export: ExportInfoGathering, Records: &n, PartitionRecords: &n, Rejected: new(int64)})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(end, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"marker", "export", "generatedTime", "runId", "partition", "partitions", "parts", "time", "records", "partitionRecords", "rejected"} {
		if _, ok := got[k]; !ok {
			t.Errorf("snapshot-end lacks %q: %s", k, end)
		}
	}
	if _, ok := got["reason"]; ok {
		t.Errorf("snapshot-end has reason: %s", end)
	}
	start, err := json.Marshal(Marker{Kind: MarkerStart})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"records"`, `"partitionRecords"`, `"rejected"`, `"reason"`} {
		if strings.Contains(string(start), k) {
			t.Errorf("snapshot-start has %s: %s", k, start)
		}
	}
}

func TestItoa(t *testing.T) {
	for _, tc := range []struct {
		in   int
		want string
	}{{0, "0"}, {7, "7"}, {10, "10"}, {-42, "-42"}, {1234567890, "1234567890"}} {
		if got := itoa(tc.in); got != tc.want {
			t.Errorf("itoa(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
