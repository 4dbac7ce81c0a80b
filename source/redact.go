package source

import (
	"errors"
	"net/url"
	"unicode/utf8"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

// stripURLQuery rewrites any *url.Error in err's chain so that its URL
// carries no query string, and returns err.
func stripURLQuery(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = schema.BlobPath(ue.URL)
	}
	return err
}

// truncate cuts s to at most n bytes, at a character boundary, marking the
// cut with "…".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
