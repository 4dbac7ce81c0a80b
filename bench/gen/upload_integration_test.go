//go:build integration

package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tvm2kafka/tvm2kafka/internal/synth"
)

// TestUploadAzurite uploads generated parts to Azurite (IT_AZURITE_BLOB) and
// downloads each back through its SAS URL with a plain HTTP GET.
func TestUploadAzurite(t *testing.T) {
	blob := os.Getenv("IT_AZURITE_BLOB")
	if blob == "" {
		t.Skip("IT_AZURITE_BLOB not set (scripts/azurite.sh env)")
	}
	dir := t.TempDir()
	l, err := generate(context.Background(), dir, synth.Options{Devices: 200, Parts: 3, Seed: time.Now().UnixNano()})
	if err != nil {
		t.Fatal(err)
	}
	urls, err := upload(context.Background(), dir, l, blob, devAccount, devKey, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(urls) != 3 {
		t.Fatalf("%d URLs", len(urls))
	}
	for i, u := range urls {
		if !strings.Contains(u, "sig=") || !strings.Contains(u, "/_RbacGroupId=") {
			t.Fatalf("URL %d is not a blob SAS URL: %s", i, u[:strings.Index(u, "?")])
		}
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want, _ := os.ReadFile(filepath.Join(dir, l.Files[i].File))
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, want) {
			t.Fatalf("part %d: status %d, %d bytes back, want %d", i, resp.StatusCode, len(got), len(want))
		}
		// Without the signature the blob is not readable.
		resp, err = http.Get(u[:strings.Index(u, "?")])
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("part %d readable without SAS", i)
		}
	}
}
