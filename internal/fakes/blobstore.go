package fakes

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// BlobRequest is one request a BlobStore or BlobProxy served.
type BlobRequest struct {
	Method string
	Path   string // URL path, without query
	Range  string // x-ms-range or Range header
	Status int
}

type storedBlob struct {
	data     []byte
	etag     string
	modified time.Time
}

// BlobStore is an in-memory Azure Blob endpoint (plain HTTP on 127.0.0.1),
// faithful enough for azblob's DownloadStream: GET and HEAD of
// /{container}/{blob path}, Range / x-ms-range requests (206 with
// Content-Range), If-Match, ETag, Last-Modified, Content-Length,
// x-ms-version, x-ms-blob-type and x-ms-request-id. Requests must carry a
// service SAS minted by SASURL: a wrong signature, an expiry (se) in the
// past or a signature revoked by ExpireSignatures get Azure's
// 403 AuthenticationFailed XML error; an unknown blob gets 404 BlobNotFound.
type BlobStore struct {
	srv *httptest.Server

	mu    sync.Mutex
	key   []byte
	blobs map[string]*storedBlob
	log   []BlobRequest
	reqID int
}

// NewBlobStore starts an empty blob store.
func NewBlobStore() *BlobStore {
	s := &BlobStore{key: newKey(), blobs: map[string]*storedBlob{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

func newKey() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic("fakes: random: " + err.Error())
	}
	return k
}

// URL is the store's base URL (http://127.0.0.1:port).
func (s *BlobStore) URL() string { return s.srv.URL }

// Close stops the server.
func (s *BlobStore) Close() { s.srv.Close() }

// Put stores (or replaces) a blob.
func (s *BlobStore) Put(container, name string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	s.blobs[container+"/"+name] = &storedBlob{
		data:     append([]byte(nil), data...),
		etag:     fmt.Sprintf("\"0x8D%X\"", now.UnixNano()),
		modified: now,
	}
}

// SASURL returns a read-only service SAS URL of the blob valid until expiry.
// URLs minted with different expiries carry different signatures.
func (s *BlobStore) SASURL(container, name string, expiry time.Time) string {
	s.mu.Lock()
	key := s.key
	s.mu.Unlock()
	se := expiry.UTC().Format(time.RFC3339)
	q := url.Values{}
	q.Set("sv", "2020-08-04")
	q.Set("st", time.Now().Add(-15*time.Minute).UTC().Format(time.RFC3339))
	q.Set("se", se)
	q.Set("sr", "b")
	q.Set("sp", "r")
	q.Set("sig", sign(key, container, name, se))
	segs := strings.Split(name, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return s.srv.URL + "/" + url.PathEscape(container) + "/" + strings.Join(segs, "/") + "?" + q.Encode()
}

// ExpireSignatures revokes every SAS minted so far: from now on requests
// carrying one get 403 AuthenticationFailed. URLs minted afterwards work.
func (s *BlobStore) ExpireSignatures() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key = newKey()
}

// Requests counts the requests served.
func (s *BlobStore) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.log)
}

// Log returns every request served, in order.
func (s *BlobStore) Log() []BlobRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]BlobRequest(nil), s.log...)
}

func sign(key []byte, container, name, se string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("r\n" + se + "\n/" + container + "/" + name))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func (s *BlobStore) serve(w http.ResponseWriter, r *http.Request) {
	entry := BlobRequest{Method: r.Method, Path: r.URL.Path, Range: rangeHeader(r)}
	s.handle(&loggingWriter{ResponseWriter: w, record: func(status int) {
		entry.Status = status
		s.mu.Lock()
		s.log = append(s.log, entry)
		s.mu.Unlock()
	}}, r)
}

// loggingWriter records a request when its status is written, before the
// client can see the answer, so that Log and Requests are exact as soon as
// the client has its response.
type loggingWriter struct {
	http.ResponseWriter
	record func(status int)
	done   bool
}

func (l *loggingWriter) WriteHeader(status int) {
	if !l.done {
		l.done = true
		l.record(status)
	}
	l.ResponseWriter.WriteHeader(status)
}

func (l *loggingWriter) Write(p []byte) (int, error) {
	if !l.done {
		l.WriteHeader(http.StatusOK)
	}
	return l.ResponseWriter.Write(p)
}

func (l *loggingWriter) Flush() {
	if f, ok := l.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (l *loggingWriter) Unwrap() http.ResponseWriter { return l.ResponseWriter }

func rangeHeader(r *http.Request) string {
	if v := r.Header.Get("x-ms-range"); v != "" {
		return v
	}
	return r.Header.Get("Range")
}

func (s *BlobStore) handle(w http.ResponseWriter, r *http.Request) int {
	s.mu.Lock()
	s.reqID++
	reqID := fmt.Sprintf("00000000-0000-0000-0000-%012d", s.reqID)
	key := s.key
	s.mu.Unlock()
	h := w.Header()
	h.Set("x-ms-request-id", reqID)
	h.Set("x-ms-version", versionOf(r))
	h.Set("Server", "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return AzureError(w, http.StatusMethodNotAllowed, "UnsupportedHttpVerb", "The resource doesn't support specified Http Verb.")
	}
	container, name, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if !ok || container == "" || name == "" {
		return AzureError(w, http.StatusBadRequest, "InvalidUri", "The requested URI does not represent any resource on the server.")
	}
	q := r.URL.Query()
	sig, se := q.Get("sig"), q.Get("se")
	if sig == "" {
		return AzureError(w, http.StatusNotFound, "ResourceNotFound", "The specified resource does not exist.")
	}
	exp, err := time.Parse(time.RFC3339, se)
	switch {
	case err != nil || !hmac.Equal([]byte(sig), []byte(sign(key, container, name, se))):
		return authFailed(w, "Signature did not match. String to sign used was r")
	case time.Now().After(exp):
		return authFailed(w, "Signed expiry time ["+se+"] must be after signed start time")
	}
	s.mu.Lock()
	b := s.blobs[container+"/"+name]
	s.mu.Unlock()
	if b == nil {
		return AzureError(w, http.StatusNotFound, "BlobNotFound", "The specified blob does not exist.")
	}
	if im := r.Header.Get("If-Match"); im != "" && im != "*" && im != b.etag {
		return AzureError(w, http.StatusPreconditionFailed, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")
	}
	size := int64(len(b.data))
	start, end := int64(0), size-1
	status := http.StatusOK
	if rg := rangeHeader(r); rg != "" {
		a, z, ok := parseRange(rg, size)
		if !ok {
			h.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
			return AzureError(w, http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "The range specified is invalid for the current size of the resource.")
		}
		start, end, status = a, z, http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, size))
	}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(end-start+1, 10))
	h.Set("ETag", b.etag)
	h.Set("Last-Modified", b.modified.Format(http.TimeFormat))
	h.Set("Accept-Ranges", "bytes")
	h.Set("x-ms-blob-type", "BlockBlob")
	h.Set("x-ms-creation-time", b.modified.Format(http.TimeFormat))
	h.Set("x-ms-lease-status", "unlocked")
	h.Set("x-ms-lease-state", "available")
	h.Set("x-ms-server-encrypted", "true")
	w.WriteHeader(status)
	if r.Method == http.MethodGet && size > 0 {
		_, _ = w.Write(b.data[start : end+1])
	}
	return status
}

func versionOf(r *http.Request) string {
	if v := r.Header.Get("x-ms-version"); v != "" {
		return v
	}
	return "2020-08-04"
}

// parseRange parses "bytes=a-" or "bytes=a-b" against size.
func parseRange(v string, size int64) (int64, int64, bool) {
	spec, ok := strings.CutPrefix(v, "bytes=")
	if !ok {
		return 0, 0, false
	}
	as, zs, ok := strings.Cut(spec, "-")
	if !ok {
		return 0, 0, false
	}
	a, err := strconv.ParseInt(as, 10, 64)
	if err != nil || a < 0 || a >= size {
		return 0, 0, false
	}
	z := size - 1
	if zs != "" {
		z, err = strconv.ParseInt(zs, 10, 64)
		if err != nil || z < a {
			return 0, 0, false
		}
		if z >= size {
			z = size - 1
		}
	}
	return a, z, true
}

func authFailed(w http.ResponseWriter, detail string) int {
	w.Header().Set("x-ms-error-code", "AuthenticationFailed")
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write([]byte(`<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.` +
		"\nTime:" + time.Now().UTC().Format("2006-01-02T15:04:05.0000000Z") + `</Message><AuthenticationErrorDetail>` + detail + `</AuthenticationErrorDetail></Error>`))
	return http.StatusForbidden
}

// AzureError writes an Azure Storage XML error with its x-ms-error-code
// header and returns status.
func AzureError(w http.ResponseWriter, status int, code, message string) int {
	w.Header().Set("x-ms-error-code", code)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(AzureErrorBody(code, message)))
	return status
}

// AzureErrorBody is Azure Storage's XML error body.
func AzureErrorBody(code, message string) string {
	return `<?xml version="1.0" encoding="utf-8"?><Error><Code>` + code + `</Code><Message>` + message +
		"\nTime:" + time.Now().UTC().Format("2006-01-02T15:04:05.0000000Z") + `</Message></Error>`
}
