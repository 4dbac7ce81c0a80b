package runner

import (
	"net/http"
	"strconv"
)

// answerCounter is the transport of the export API's client: it reports
// every answer's status code.
type answerCounter struct {
	base  http.RoundTripper // nil: http.DefaultTransport
	count func(code string)
}

func (a *answerCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	base := a.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(r)
	switch {
	case err == nil:
		a.count(strconv.Itoa(resp.StatusCode))
	case r.Context().Err() == nil: // not a cancellation of ours
		a.count("error")
	}
	return resp, err
}
