//go:build integration

package testrig

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func produce(t *testing.T, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// TestKafkaHelpers proves NewTopic, ReadAll, KcatConsume and ConsoleConsume
// against the real broker: what franz-go wrote, three independent readers see.
func TestKafkaHelpers(t *testing.T) {
	rig := Env(t)
	topic := rig.NewTopic(t, 3)

	cl := rig.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var want []*kgo.Record
	for p := int32(0); p < 3; p++ {
		for i := 0; i < 2; i++ {
			want = append(want, &kgo.Record{
				Topic:     topic,
				Partition: p,
				Key:       []byte(fmt.Sprintf("key-%d-%d", p, i)),
				Value:     []byte(fmt.Sprintf(`{"DeviceId":"d%d%d"}`, p, i)),
				Headers:   []kgo.RecordHeader{{Key: "mde.kind", Value: []byte("record")}, {Key: "mde.line", Value: []byte(fmt.Sprint(i + 1))}},
			})
		}
	}
	produce(t, cl, want...)

	got := rig.ReadAll(t, topic)
	if len(got) != len(want) {
		t.Fatalf("ReadAll returned %d records, want %d: %+v", len(got), len(want), got)
	}
	for i, r := range got {
		w := want[i] // both ordered by partition, then offset
		if r.Partition != w.Partition || r.Offset != int64(i%2) || !bytes.Equal(r.Key, w.Key) || !bytes.Equal(r.Value, w.Value) {
			t.Errorf("record %d = p%d@%d %s=%s, want p%d@%d %s=%s", i, r.Partition, r.Offset, r.Key, r.Value, w.Partition, i%2, w.Key, w.Value)
		}
		if r.Headers["mde.kind"] != "record" || r.Headers["mde.line"] != fmt.Sprint(i%2+1) || strings.Join(r.HeaderKeys, ",") != "mde.kind,mde.line" {
			t.Errorf("record %d headers = %v (%v)", i, r.Headers, r.HeaderKeys)
		}
	}

	kc := rig.KcatConsume(t, topic)
	cc := rig.ConsoleConsume(t, topic, len(want))
	for _, w := range want {
		kcLine := fmt.Sprintf("%d\t%s\tmde.kind=record,mde.line=%s\t%s", w.Partition, w.Key, w.Headers[1].Value, w.Value)
		if !containsLine(kc, kcLine) {
			t.Errorf("kcat output lacks %q:\n%s", kcLine, kc)
		}
		ccLine := fmt.Sprintf("Partition:%d\tmde.kind:record,mde.line:%s\t%s\t%s", w.Partition, w.Headers[1].Value, w.Key, w.Value)
		if !containsLine(cc, ccLine) {
			t.Errorf("console consumer output lacks %q:\n%s", ccLine, cc)
		}
	}
	if n := strings.Count(kc, "\n"); n != len(want) {
		t.Errorf("kcat printed %d lines, want %d", n, len(want))
	}
}

func containsLine(out, line string) bool {
	for _, l := range strings.Split(out, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// TestSASLListener proves the SASL_SSL listener with the rig's CA and users:
// SCRAM-SHA-512 and PLAIN succeed, a wrong password is refused.
func TestSASLListener(t *testing.T) {
	rig := Env(t)
	topic := rig.NewTopic(t, 1)
	for _, tc := range []struct {
		name string
		mech sasl.Mechanism
	}{
		{"scram-sha-512", scram.Auth{User: rig.ScramUser, Pass: rig.ScramPassword}.AsSha512Mechanism()},
		{"scram-sha-256", scram.Auth{User: rig.ScramUser, Pass: rig.ScramPassword}.AsSha256Mechanism()},
		{"plain", plain.Auth{User: rig.PlainUser, Pass: rig.PlainPassword}.AsMechanism()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := kgo.NewClient(kgo.SeedBrokers(rig.SASLBrokers...), kgo.DialTLSConfig(rig.TLSConfig(t)), kgo.SASL(tc.mech))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			produce(t, cl, &kgo.Record{Topic: topic, Key: []byte(tc.name), Value: []byte("via " + tc.name)})
		})
	}
	got := map[string]string{}
	for _, r := range rig.ReadAll(t, topic) {
		got[string(r.Key)] = string(r.Value)
	}
	for _, k := range []string{"scram-sha-512", "scram-sha-256", "plain"} {
		if got[k] != "via "+k {
			t.Errorf("record %q = %q, want %q (all: %v)", k, got[k], "via "+k, got)
		}
	}

	t.Run("wrong password refused", func(t *testing.T) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(rig.SASLBrokers...), kgo.DialTLSConfig(rig.TLSConfig(t)),
			kgo.SASL(scram.Auth{User: rig.ScramUser, Pass: "wrong"}.AsSha512Mechanism()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = cl.Ping(ctx)
		if err == nil || !strings.Contains(err.Error(), "SASL") {
			t.Fatalf("ping with a wrong password = %v, want a SASL authentication error", err)
		}
	})
}

// TestBrokerRestart proves StopKafka/StartKafka: data written before the
// restart is there after it, and the broker takes writes again.
func TestBrokerRestart(t *testing.T) {
	rig := Env(t)
	topic := rig.NewTopic(t, 2)
	produce(t, rig.Client(t), &kgo.Record{Topic: topic, Key: []byte("before"), Value: []byte("1")})

	rig.StopKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	down, err := kgo.NewClient(kgo.SeedBrokers(rig.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	if err := down.Ping(ctx); err == nil {
		t.Fatal("broker still answers after StopKafka")
	}
	down.Close()

	rig.StartKafka(t)
	produce(t, rig.Client(t), &kgo.Record{Topic: topic, Key: []byte("after"), Value: []byte("2")})
	var keys []string
	for _, r := range rig.ReadAll(t, topic) {
		keys = append(keys, string(r.Key))
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != "after,before" {
		t.Fatalf("keys after restart = %v, want before and after", keys)
	}
}

// TestAzuriteSAS proves UploadBlobs: the SAS URL downloads the exact bytes
// with no credential, the same URL without its SAS is refused, and an
// expired SAS is refused.
func TestAzuriteSAS(t *testing.T) {
	rig := Env(t)
	container := UniqueName(t, "c")
	name := "InfoGatheringExport/json/OrgId=0a1b/_RbacGroupId=7/part-00001-x.c000.json.gz"
	content := bytes.Repeat([]byte("0123456789abcdef"), 70000) // > 1 MB: more than one block
	urls := rig.UploadBlobs(t, container, map[string][]byte{name: content})
	u := urls[name]
	if !strings.Contains(u, "sig=") || !strings.Contains(u, "/"+container+"/") {
		t.Fatalf("SAS URL %q lacks its signature or container", u)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bc, err := blob.NewClientWithNoCredential(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := bc.DownloadStream(ctx, nil)
	if err != nil {
		t.Fatalf("download through SAS: %v", err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) {
		t.Fatalf("downloaded %d bytes, want the %d uploaded", len(got), len(content))
	}

	for _, tc := range []struct{ name, url string }{
		{"no SAS", u[:strings.Index(u, "?")]},
		{"expired SAS", mustSAS(t, rig, container, name, SASOptions{Expiry: -time.Minute})},
		{"tampered signature", strings.Replace(u, "sp=r", "sp=rw", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusForbidden && res.StatusCode != http.StatusNotFound {
				t.Fatalf("GET = %d, want 403 or 404", res.StatusCode)
			}
		})
	}
}

func mustSAS(t *testing.T, rig Rig, container, name string, o SASOptions) string {
	t.Helper()
	u, err := rig.BlobSASURL(container, name, o)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
