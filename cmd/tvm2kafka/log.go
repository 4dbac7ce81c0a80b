package main

import (
	"bytes"
	"io"
	"regexp"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// newLogger builds the zerolog logger of a run. Whatever it writes passes
// through a redactor: the code never logs a secret, and the redactor makes
// sure a secret that slips into an error text from a library does not
// reach the output either.
func newLogger(cfg *config, stderr io.Writer) zerolog.Logger {
	var out io.Writer = &redactor{w: stderr, secrets: cfg.secretsSeen}
	if cfg.logFormat == "console" {
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: time.RFC3339}
	}
	return zerolog.New(out).Level(cfg.logLevel).With().Timestamp().Logger()
}

// sasSecrets matches the signature-bearing query parameters of SAS URLs
// and bearer tokens in text.
var sasSecrets = regexp.MustCompile(`(?i)([?&]sig=)[^&"\s\\]+|(bearer\s+)[A-Za-z0-9\-_.~+/]+=*`)

// redactor replaces known secret values and SAS signatures in everything
// written through it. One zerolog event is one Write call.
type redactor struct {
	mu      sync.Mutex
	w       io.Writer
	secrets []string
}

func (r *redactor) Write(p []byte) (int, error) {
	q := p
	for _, s := range r.secrets {
		if len(s) >= 4 && bytes.Contains(q, []byte(s)) {
			q = bytes.ReplaceAll(q, []byte(s), []byte("[REDACTED]"))
		}
	}
	q = sasSecrets.ReplaceAll(q, []byte("${1}${2}[REDACTED]"))
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.w.Write(q); err != nil {
		return 0, err
	}
	return len(p), nil
}
