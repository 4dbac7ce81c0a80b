// Package testutil holds small helpers shared by the tests of several
// packages. It is imported by tests only.
package testutil

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Poll checks cond until it holds and fails t once limit has passed
// first, naming what it waited for. The checks start a millisecond apart
// and space out to 100 ms, so a cheap condition is seen at once and an
// expensive one (a broker query) is not asked too often. cond runs on the
// test's goroutine and may itself fail t to stop waiting early.
func Poll(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 100*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(wait) // between two checks of the condition, bounded by the deadline
	}
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers: a
// log sink that a test reads while the code under test still writes.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Docs is the user documentation of the repository at root: README.md and
// every page under docs/, joined, for tests that check that something is
// documented wherever the documentation keeps it.
func Docs(t testing.TB, root string) string {
	t.Helper()
	files := []string{filepath.Join(root, "README.md")}
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(pages)
	var b strings.Builder
	for _, f := range append(files, pages...) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
		b.WriteString("\n")
	}
	return b.String()
}
