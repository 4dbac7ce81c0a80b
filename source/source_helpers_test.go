package source_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"

	"github.com/tvm2kafka/tvm2kafka/internal/redact"
	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func testLogger() (zerolog.Logger, *testutil.SyncBuffer) {
	buf := &testutil.SyncBuffer{}
	return zerolog.New(buf).Level(zerolog.DebugLevel), buf
}

// assertNoSecrets fails when any of texts contains a SAS signature or one
// of the given secrets.
func assertNoSecrets(t *testing.T, texts []string, secrets ...string) {
	t.Helper()
	for _, s := range texts {
		if strings.Contains(s, "sig=") && !strings.Contains(s, "sig="+redact.Mask) {
			t.Errorf("SAS signature in %q", s)
		}
		for _, sec := range secrets {
			if sec != "" && strings.Contains(s, sec) {
				t.Errorf("secret %q leaked in %q", sec, s)
			}
		}
	}
}

func gz(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// lines makes n JSON lines of about 1 KB each.
func lines(n int) []byte {
	var b bytes.Buffer
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	pad := make([]byte, 450)
	for i := 0; i < n; i++ {
		for j := range pad {
			pad[j] = byte(rng.IntN(16))
		}
		fmt.Fprintf(&b, `{"DeviceId":"%040x","DeviceName":"host-%d.contoso.com","Pad":"%x"}`+"\n", i, i, pad)
	}
	return b.Bytes()
}
