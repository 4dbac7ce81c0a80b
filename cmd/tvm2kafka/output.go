package main

import (
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"

	"github.com/tvm2kafka/tvm2kafka/internal/redact"
)

func init() {
	// One unit for every duration in the logs: seconds, as a number
	// (zerolog's default is milliseconds). Set once, before any logger
	// exists; it holds for the libraries' Dur fields too.
	zerolog.DurationFieldUnit = time.Second
	zerolog.DurationFieldInteger = false
}

// terminal is stderr as the logs and the live progress line share it. On
// a terminal every log write first clears the live line and redraws it
// afterwards, so a log line never runs into the progress line.
type terminal struct {
	mu    sync.Mutex
	out   io.Writer
	tty   bool
	width func() int // columns, 0 = unknown
	line  string     // the live line shown, "" = none
}

func newTerminal(stderr io.Writer) *terminal {
	t := &terminal{out: stderr, width: func() int { return 0 }}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		t.tty = true
		t.width = func() int {
			w, _, err := term.GetSize(int(f.Fd()))
			if err != nil {
				return 0
			}
			return w
		}
	}
	return t
}

// Write writes a log event.
func (t *terminal) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.line != "" {
		io.WriteString(t.out, "\r\033[K")
	}
	_, err := t.out.Write(p)
	if t.line != "" {
		io.WriteString(t.out, t.line)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// show replaces the live line, cut to the terminal's width.
func (t *terminal) show(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if w := t.width(); w > 1 && len(line) >= w {
		line = line[:w-1]
	}
	io.WriteString(t.out, "\r\033[K"+line)
	t.line = line
}

// finish ends the live line: the last one stays, followed by a newline.
func (t *terminal) finish() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.line != "" {
		io.WriteString(t.out, "\n")
		t.line = ""
	}
}

// newLogger builds the zerolog logger of a run. Whatever it writes passes
// through a redactor: the code never logs a secret, and the redactor makes
// sure a secret that slips into an error text from a library does not
// reach the output either. Console output is coloured only on a terminal
// (and not with NO_COLOR set).
func newLogger(cfg *config, out io.Writer) zerolog.Logger {
	return buildLogger(out, cfg.logFormat, cfg.logLevel, cfg.secretsSeen)
}

func buildLogger(out io.Writer, format string, level zerolog.Level, secrets []string) zerolog.Logger {
	w := redact.NewWriter(out, redact.New(secrets...))
	if format == "console" {
		t, ok := out.(*terminal)
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339, NoColor: !ok || !t.tty}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// fallbackFormat is LOG_FORMAT as far as it can be read from settings that
// may be invalid: json unless console was asked for.
func fallbackFormat(raw rawValues) string {
	if strings.EqualFold(strings.TrimSpace(raw["LOG_FORMAT"]), "console") {
		return "console"
	}
	return "json"
}

// fallbackLogger is the logger of a run whose configuration is invalid:
// LOG_FORMAT and LOG_LEVEL as far as they are valid, every value of a
// secret setting redacted.
func fallbackLogger(raw rawValues, out io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(strings.ToLower(strings.TrimSpace(raw["LOG_LEVEL"])))
	if err != nil || raw["LOG_LEVEL"] == "" {
		level = zerolog.InfoLevel
	}
	return buildLogger(out, fallbackFormat(raw), level, rawSecrets(raw))
}

// rawSecrets are the values of the secret settings of run among raw.
func rawSecrets(raw rawValues) []string { return secretsOf(settings(), raw) }

// redactConfigError is err's text without any secret value.
func redactConfigError(raw rawValues, err error) string {
	return redact.New(rawSecrets(raw)...).String(err.Error())
}
