package main

import (
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/tvm2kafka/tvm2kafka/internal/redact"
)

// newLogger builds the zerolog logger of a run. Whatever it writes passes
// through a redactor: the code never logs a secret, and the redactor makes
// sure a secret that slips into an error text from a library does not
// reach the output either.
func newLogger(cfg *config, stderr io.Writer) zerolog.Logger {
	out := redact.NewWriter(stderr, redact.New(cfg.secretsSeen...))
	if cfg.logFormat == "console" {
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: time.RFC3339}
	}
	return zerolog.New(out).Level(cfg.logLevel).With().Timestamp().Logger()
}
