// Package redact removes secrets from text before it is logged, printed
// or written into a marker: the value of every SAS signature parameter
// (sig=…), the query string of every http(s) URL, bearer tokens, and
// secret values the caller knows (client secrets, passwords, tokens).
//
// It works on bytes. Text that is not valid UTF-8 is scanned like any
// other: no offset is ever taken from a transformed copy of the input
// (such as a lower-cased one, whose length can differ), so nothing is
// sliced at the wrong place and nothing panics. The package is pure: no
// I/O except through the io.Writer handed to NewWriter.
package redact

import (
	"bytes"
	"encoding/json"
	"io"
	"sort"
	"strings"
	"sync"
)

// Mask replaces every redacted value.
const Mask = "[REDACTED]"

// MinSecretLen is the shortest known secret value that is redacted:
// replacing every occurrence of a shorter one would garble the text
// without protecting anything.
const MinSecretLen = 4

// minBearerLen is the shortest token redacted after "Bearer ": real
// tokens are far longer, and English text ("a bearer token obtained
// elsewhere") is left alone.
const minBearerLen = 8

// String returns s without SAS signatures, URL query strings and bearer
// tokens.
func String(s string) string {
	if !suspicious([]byte(s)) {
		return s
	}
	return string(scan([]byte(s)))
}

// Bytes is String for a byte slice. It returns p itself when there is
// nothing to redact.
func Bytes(p []byte) []byte {
	if !suspicious(p) {
		return p
	}
	return scan(p)
}

// Redactor removes known secret values as well as everything String
// removes. The zero value knows no secret. It is safe for concurrent use.
type Redactor struct {
	secrets [][]byte // longest first
}

// New returns a Redactor for the given secret values. Values shorter
// than MinSecretLen are ignored. Each value's JSON-escaped form (how it
// appears inside a JSON log line) is redacted too.
func New(secrets ...string) *Redactor {
	seen := map[string]bool{}
	r := &Redactor{}
	add := func(s string) {
		if len(s) >= MinSecretLen && !seen[s] {
			seen[s] = true
			r.secrets = append(r.secrets, []byte(s))
		}
	}
	for _, s := range secrets {
		add(s)
		var q bytes.Buffer
		enc := json.NewEncoder(&q)
		enc.SetEscapeHTML(false) // as zerolog writes strings
		if err := enc.Encode(s); err == nil {
			add(strings.TrimSuffix(strings.TrimSpace(q.String()), `"`)[1:])
		}
	}
	sort.SliceStable(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
	return r
}

// Bytes returns p without the known secrets, SAS signatures, URL query
// strings and bearer tokens; p itself when there is nothing to redact.
func (r *Redactor) Bytes(p []byte) []byte {
	if r != nil {
		for _, s := range r.secrets {
			if bytes.Contains(p, s) {
				p = bytes.ReplaceAll(p, s, []byte(Mask))
			}
		}
	}
	return Bytes(p)
}

// String is Bytes for a string.
func (r *Redactor) String(s string) string {
	if r == nil || len(r.secrets) == 0 {
		return String(s)
	}
	return string(r.Bytes([]byte(s)))
}

// writer redacts everything written through it.
type writer struct {
	mu sync.Mutex
	w  io.Writer
	r  *Redactor
}

// NewWriter returns a writer that passes everything written to it through
// r (nil: no known secrets) to w. Each Write call is redacted as a whole,
// so a caller that writes one log event per call (zerolog does) never has
// a secret split across two calls. Writes are serialised.
func NewWriter(w io.Writer, r *Redactor) io.Writer {
	return &writer{w: w, r: r}
}

func (w *writer) Write(p []byte) (int, error) {
	q := w.r.Bytes(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.w.Write(q); err != nil {
		return 0, err
	}
	return len(p), nil
}

// suspicious reports whether p holds anything scan may change: "sig",
// "bearer" (in any ASCII case) or "://".
func suspicious(p []byte) bool {
	for i := range p {
		switch p[i] {
		case 's', 'S':
			if hasFold(p[i:], "sig") {
				return true
			}
		case 'b', 'B':
			if hasFold(p[i:], "bearer") {
				return true
			}
		case ':':
			if bytes.HasPrefix(p[i:], []byte("://")) {
				return true
			}
		}
	}
	return false
}

// scan copies p, replacing signature values and bearer tokens with Mask
// and dropping the query strings of http(s) URLs.
func scan(p []byte) []byte {
	out := make([]byte, 0, len(p))
	inURL := false // after "http(s)://", before the URL's end
	for i := 0; i < len(p); {
		switch {
		case hasFold(p[i:], "sig="), hasFold(p[i:], "sig%3d"):
			n := len("sig=")
			if p[i+3] == '%' {
				n = len("sig%3d")
			}
			out = append(out, p[i:i+n]...)
			i += n
			j := i
			for j < len(p) && isSigByte(p[j]) {
				j++
			}
			if j > i {
				out = append(out, Mask...)
				i = j
			}
		case hasFold(p[i:], "http://"), hasFold(p[i:], "https://"):
			n := bytes.IndexByte(p[i:], ':') + len("://")
			out = append(out, p[i:i+n]...)
			i += n
			inURL = true
		case hasFold(p[i:], "bearer"):
			j := i + len("bearer")
			k := j
			for k < len(p) && isSpace(p[k]) {
				k++
			}
			t := k
			for t < len(p) && isTokenByte(p[t]) {
				t++
			}
			for t < len(p) && p[t] == '=' {
				t++
			}
			out = append(out, p[i:k]...)
			i = k
			if k > j && t-k >= minBearerLen {
				out = append(out, Mask...)
				i = t
			}
		case inURL && p[i] == '?':
			for i < len(p) && !endsURL(p[i]) {
				i++
			}
			inURL = false
		default:
			if endsURL(p[i]) {
				inURL = false
			}
			out = append(out, p[i])
			i++
		}
	}
	return out
}

// hasFold reports whether p starts with the lower-case ASCII prefix, in
// any ASCII case. Bytes ≥ 0x80 never match.
func hasFold(p []byte, prefix string) bool {
	if len(p) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := p[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// isSigByte reports whether c may be part of a SAS signature as it
// appears in text: base64, URL-encoded or not, and base64url.
func isSigByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '%' || c == '+' || c == '/' || c == '=' || c == '-' || c == '_' || c == '.' || c == '~'
}

// isTokenByte reports whether c may be part of a bearer token (RFC 6750
// b64token, without the trailing '=' padding).
func isTokenByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == '/'
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// endsURL reports whether c ends a URL in running text: whitespace,
// quotes, angle brackets, a backslash (JSON escapes), a fragment, or a
// byte that is not printable ASCII.
func endsURL(c byte) bool {
	return c <= ' ' || c >= 0x7f || c == '"' || c == '\'' || c == '<' || c == '>' || c == '\\' || c == '#'
}
