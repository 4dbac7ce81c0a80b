package source

import (
	"errors"
	"net/url"
	"regexp"
	"strings"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

var (
	reURLQuery = regexp.MustCompile(`(https?://[^\s?"'#<>]+)\?[^\s"'#<>]*`)
	reSig      = regexp.MustCompile(`(?i)(sig=)[^&\s"'<>]+`)
)

// scrub removes URL query strings and SAS signatures from s.
func scrub(s string) string {
	s = reURLQuery.ReplaceAllString(s, "$1")
	return reSig.ReplaceAllString(s, "${1}REDACTED")
}

// stripURLQuery rewrites any *url.Error in err's chain so that its URL
// carries no query string, and returns err.
func stripURLQuery(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = schema.BlobPath(ue.URL)
	}
	return err
}

// redactSecret replaces every occurrence of secret in s.
func redactSecret(s, secret string) string {
	if len(secret) < 4 {
		return s
	}
	return strings.ReplaceAll(s, secret, "REDACTED")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
