//go:build integration

package registry_test

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/tvm2kafka/tvm2kafka/internal/testrig"
	"github.com/tvm2kafka/tvm2kafka/registry"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// previous is the declaration of export e as an earlier release of
// tvm2kafka had it: without its last documented column.
func previous(e schema.Export) schema.Export {
	e.Columns = e.Columns[:len(e.Columns)-1]
	return e
}

// TestRegisterBackwardCompatible: against the rig's Apicurio Registry,
// the schemas of this release register after those of a release that had
// one column less (the registry checks BACKWARD, which Register sets on a
// new subject), registering again gives the same id, and a schema that
// changes a column's type is refused with the registry's answer.
func TestRegisterBackwardCompatible(t *testing.T) {
	rig := testrig.Env(t)
	ctx := context.Background()
	cl, err := registry.New(registry.Config{URL: rig.Registry(t)})
	if err != nil {
		t.Fatal(err)
	}
	vulns, _ := schema.LookupExport("SoftwareVulnerabilitiesExport")
	for _, tc := range []struct {
		kind registry.Kind
		gen  func(schema.Export) string
	}{{registry.Avro, schema.AvroSchema}, {registry.JSONSchema, schema.JSONSchema}} {
		subject := registry.Subject(testrig.UniqueName(t, "reg"))
		old, err := cl.Register(ctx, subject, tc.kind, tc.gen(previous(vulns)))
		if err != nil {
			t.Fatalf("previous release's schema: %v", err)
		}
		if !old.SetCompatibility {
			t.Errorf("a new subject's compatibility was not set")
		}
		cur, err := cl.Register(ctx, subject, tc.kind, tc.gen(vulns))
		if err != nil {
			t.Fatalf("this release's schema after the previous one: %v", err)
		}
		if cur.ID == old.ID || cur.SetCompatibility {
			t.Errorf("current %+v, previous %+v: want a new id and the level left as it is", cur, old)
		}
		again, err := cl.Register(ctx, subject, tc.kind, tc.gen(vulns))
		if err != nil || again.ID != cur.ID {
			t.Errorf("registering again: %+v, %v; want id %d", again, err, cur.ID)
		}
		direct, err := sr.NewClient(sr.URLs(rig.Registry(t)))
		if err != nil {
			t.Fatal(err)
		}
		if c := direct.Compatibility(ctx, subject)[0]; c.Err != nil || c.Level != sr.CompatBackward {
			t.Errorf("subject's compatibility %v (%v), want BACKWARD", c.Level, c.Err)
		}
		// A column of another type: not BACKWARD compatible.
		changed := vulns
		changed.Columns = append([]schema.Column(nil), vulns.Columns...)
		for i, c := range changed.Columns {
			if c.Name == "CvssScore" {
				changed.Columns[i].Type = schema.TypeBool
			}
		}
		_, err = cl.Register(ctx, subject, tc.kind, tc.gen(changed))
		if err == nil || !strings.Contains(err.Error(), subject) {
			t.Errorf("%v schema with CvssScore a boolean: %v, want a refusal naming the subject", tc.kind, err)
		}
		t.Logf("refused as wanted: %v", err)
	}
}
