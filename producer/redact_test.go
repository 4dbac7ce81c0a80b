package producer

import (
	"errors"
	"strings"
	"testing"
)

// Error texts may hold invalid UTF-8 (bytes of a line, a broken URL) before
// a SAS signature: the signature is still removed whole, and nothing panics.
func TestPartErrorRedactsSignaturesInAnyBytes(t *testing.T) {
	for _, msg := range []string{
		"\xff\xff\xff …?sig=SECRETSECRET&se=2",
		"\xff\xff\xff\xff\xff sig=SECRETSECRET",
		"\xff\xff\xff\xff\xff sig=ab",
	} {
		e := &PartError{Part: 1, Path: "https://a.blob.core.windows.net/c/p.gz?sig=PATHSECRET", Line: 3, Err: errors.New(msg)}
		got := e.Error()
		for _, bad := range []string{"SECRET", "sig=ab"} {
			if strings.Contains(got, bad) {
				t.Errorf("PartError.Error() = %q holds %q", got, bad)
			}
		}
		if !strings.HasPrefix(got, "part 1 (https://a.blob.core.windows.net/c/p.gz) line 3: ") {
			t.Errorf("PartError.Error() = %q", got)
		}
	}
}
