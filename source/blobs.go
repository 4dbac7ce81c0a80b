package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/cenkalti/backoff/v4"
	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"

	"github.com/tvm2kafka/tvm2kafka/internal/names"
	"github.com/tvm2kafka/tvm2kafka/internal/redact"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// Errors of OpenPart and of reading the stream it returns (wrapped in a
// *BlobError that names the blob path).
var (
	// ErrNotFound: the blob does not exist (404). Permanent.
	ErrNotFound = errors.New("blob not found")
	// ErrCorrupt: the part is not a complete, valid gzip stream. Permanent.
	ErrCorrupt = errors.New("part is not valid gzip")
	// ErrCopyPending: the blob's copy has not finished (empty body,
	// x-ms-copy-status: pending). Retryable.
	ErrCopyPending = errors.New("blob copy still pending")
	// ErrSASExpired: storage refused the SAS (403 AuthenticationFailed).
	// OpenPart refreshes the URL itself; retryable.
	ErrSASExpired = errors.New("SAS URL rejected (403 AuthenticationFailed), probably expired")
	// ErrSASRefreshLimit: storage kept rejecting the SAS URLs after the
	// run's manifest refreshes (BlobConfig.MaxRefreshes). Permanent.
	ErrSASRefreshLimit = errors.New("SAS refresh limit reached")
	// ErrSnapshotChanged: a refreshed manifest belongs to another snapshot
	// (generatedTime changed) or no longer lists the part. Permanent.
	ErrSnapshotChanged = errors.New("the export changed while it was being read")
)

// BlobError is a failure to open or read one part.
type BlobError struct {
	Path   string // blob URL without query
	Status int    // HTTP status, 0 if none
	Code   string // x-ms-error-code, if any
	Err    error
	retry  bool
}

func (e *BlobError) Error() string {
	s := "blob " + e.Path + ": "
	if e.Status != 0 {
		s += fmt.Sprintf("HTTP %d", e.Status)
		if e.Code != "" {
			s += " " + e.Code
		}
		s += ": "
	}
	return s + redact.String(e.Err.Error())
}

func (e *BlobError) Unwrap() error { return e.Err }

// IsRetryable reports whether an error of OpenPart, or of reading the
// stream it returned, is transient: reopening the part may succeed.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrSnapshotChanged) || errors.Is(err, ErrEmptyExport) {
		return false
	}
	var be *BlobError
	if errors.As(err, &be) {
		return be.retry
	}
	var ae *APIError
	var au *AuthError
	if errors.As(err, &ae) || errors.As(err, &au) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrCopyPending)
}

// BlobConfig configures Blobs.
type BlobConfig struct {
	// HTTPClient is azblob's transport; nil = azcore's default transport
	// (honours HTTPS_PROXY / NO_PROXY).
	HTTPClient *http.Client
	// Refresh fetches the manifest again when a SAS has expired; usually
	// ExportClient.Manifest. Nil: an expired SAS fails the part.
	Refresh func(ctx context.Context) (schema.Manifest, error)
	// GeneratedTime is the generatedTime of the manifest the parts come
	// from; a refreshed manifest with another one fails with
	// ErrSnapshotChanged. "" = the first refreshed manifest's is kept.
	GeneratedTime string
	// MaxElapsed bounds the retries inside one OpenPart; 0 = 2 minutes.
	MaxElapsed time.Duration
	// MaxRefreshes bounds the manifest refreshes of a run (all parts
	// together); 0 = DefaultMaxRefreshes. Once it is reached, a SAS URL
	// that storage still rejects fails its part with ErrSASRefreshLimit.
	MaxRefreshes int
	// Clock nil = RealClock().
	Clock  Clock
	Logger zerolog.Logger
	// Names names the settings behind the fields in errors; nil names
	// the fields.
	Names names.Func
}

// Blobs opens part files.
type Blobs struct {
	cfg   BlobConfig
	opts  *blob.ClientOptions
	bytes atomic.Int64
	sizes sync.Map // blob path → Content-Length, for progress

	flight    singleflight.Group // one manifest refresh at a time, shared
	mu        sync.Mutex
	gen       int               // bumped by every refresh
	refreshes int               // manifest refreshes made in this run
	urls      map[string]string // blob path → latest SAS URL (after a refresh)
	genTime   string
}

// NewBlobs returns a part opener.
func NewBlobs(cfg BlobConfig) *Blobs {
	if cfg.Clock == nil {
		cfg.Clock = RealClock()
	}
	if cfg.MaxElapsed <= 0 {
		cfg.MaxElapsed = 2 * time.Minute
	}
	if cfg.MaxRefreshes <= 0 {
		cfg.MaxRefreshes = DefaultMaxRefreshes
	}
	co := azcore.ClientOptions{
		// Retries are ours (bounded, on our clock, with SAS refresh).
		Retry: policy.RetryOptions{MaxRetries: -1},
		// The azcore log listener is never installed; keep SAS out of
		// any log anyway.
		Logging: policy.LogOptions{IncludeBody: false},
	}
	if cfg.HTTPClient != nil {
		co.Transport = cfg.HTTPClient
	}
	return &Blobs{cfg: cfg, opts: &blob.ClientOptions{ClientOptions: co}, genTime: cfg.GeneratedTime}
}

// BytesDownloaded returns the compressed bytes read from blob storage,
// all parts together.
func (b *Blobs) BytesDownloaded() int64 { return b.bytes.Load() }

// KnownSizes returns the compressed size of the parts opened so far (as
// storage announced it) and their number.
func (b *Blobs) KnownSizes() (bytes int64, parts int) {
	b.sizes.Range(func(_, v any) bool {
		if n := v.(int64); n >= 0 {
			bytes += n
			parts++
		}
		return true
	})
	return bytes, parts
}

// currentURL returns the latest URL of part and the refresh generation.
func (b *Blobs) currentURL(part schema.Part) (string, int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.urls == nil {
		return part.URL, b.gen, nil
	}
	u, ok := b.urls[part.Path]
	if !ok {
		return "", b.gen, &BlobError{Path: part.Path, Err: fmt.Errorf("%w: the refreshed manifest no longer lists this part", ErrSnapshotChanged)}
	}
	return u, b.gen, nil
}

// DefaultMaxRefreshes is BlobConfig.MaxRefreshes' default: a run may
// fetch the export's URLs again at most ten times, half of the export API's
// budget of 20 calls an hour, so that storage rejecting every SAS cannot
// spend it all (a run outliving its SAS URLs needs one refresh per SAS
// lifetime, 3 hours by default).
const DefaultMaxRefreshes = 10

// refresh fetches the manifest again, once for all the workers whose URLs
// are of generation gen; a worker whose URL is older than the latest
// refresh just takes the new URL.
func (b *Blobs) refresh(ctx context.Context, path string, gen int) error {
	if b.cfg.Refresh == nil {
		return &BlobError{Path: path, Status: http.StatusForbidden, Code: "AuthenticationFailed", Err: ErrSASExpired}
	}
	_, err, _ := b.flight.Do(strconv.Itoa(gen), func() (any, error) {
		b.mu.Lock()
		if b.gen != gen {
			b.mu.Unlock()
			return nil, nil // refreshed meanwhile
		}
		if b.refreshes >= b.cfg.MaxRefreshes {
			b.mu.Unlock()
			return nil, &BlobError{Path: path, Status: http.StatusForbidden, Code: "AuthenticationFailed",
				Err: fmt.Errorf("%w: storage still rejects the SAS URLs after %d refreshes of the export's URLs in this run; giving up to spare the export API's hourly budget (check the clock of this machine and %s)", ErrSASRefreshLimit, b.refreshes, b.cfg.Names.Of("source.SASValidHours"))}
		}
		b.refreshes++
		n := b.refreshes
		b.mu.Unlock()
		b.cfg.Logger.Warn().Str("blob", path).Int("refresh", n).Int("max_refreshes", b.cfg.MaxRefreshes).
			Msg("SAS URL rejected (403 AuthenticationFailed), fetching the export's URLs again")
		m, err := b.cfg.Refresh(ctx)
		if err != nil {
			return nil, fmt.Errorf("blob %s: SAS expired; fetching the export again failed: %w", path, err)
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.genTime == "" {
			b.genTime = m.GeneratedTime
		} else if m.GeneratedTime != b.genTime {
			return nil, &BlobError{Path: path, Err: fmt.Errorf("%w: generatedTime %s, was %s", ErrSnapshotChanged, m.GeneratedTime, b.genTime)}
		}
		urls := make(map[string]string, len(m.Parts))
		for _, p := range m.Parts {
			urls[p.Path] = p.URL
		}
		b.urls = urls
		b.gen++
		return nil, nil
	})
	return err
}

// OpenPart downloads a part and returns its decompressed content. 5xx,
// 429 and network errors are retried with backoff within MaxElapsed; a
// blob still being copied is waited for; a SAS URL that storage rejects as
// expired (403 AuthenticationFailed) leads to one manifest refresh shared
// by all workers, then at once to a new attempt with the part's new URL,
// within MaxRefreshes per run; any other 403 and 404 fail. A connection
// cut while reading is resumed with a Range request; read errors that
// remain are retryable (IsRetryable), except ErrCorrupt.
func (b *Blobs) OpenPart(ctx context.Context, part schema.Part) (io.ReadCloser, error) {
	var (
		rc       io.ReadCloser
		attempts int
	)
	err := retry(ctx, b.cfg.Clock, newBackoff(b.cfg.Clock, 250*time.Millisecond, 15*time.Second, b.cfg.MaxElapsed), func() error {
		attempts++
		for {
			u, gen, err := b.currentURL(part)
			if err != nil {
				return backoff.Permanent(err)
			}
			if rc, err = b.open(ctx, part.Path, u); err == nil {
				return nil
			}
			if ctx.Err() != nil {
				return backoff.Permanent(err)
			}
			if !errors.Is(err, ErrSASExpired) {
				if !IsRetryable(err) {
					return backoff.Permanent(err)
				}
				return err
			}
			if err := b.refresh(ctx, part.Path, gen); err != nil {
				return backoff.Permanent(err)
			}
		}
	}, func(err error, wait time.Duration) {
		b.cfg.Logger.Warn().Str("blob", part.Path).Int("attempt", attempts).Dur("retry_in", wait).Str("error", err.Error()).Msg("part download failed, retrying")
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, &BlobError{Path: part.Path, Err: ctx.Err()}
		}
		if IsRetryable(err) {
			b.cfg.Logger.Error().Str("blob", part.Path).Int("attempts", attempts).Str("error", err.Error()).Msg("giving up on part")
		}
		return nil, err
	}
	b.sizes.LoadOrStore(part.Path, rc.(*partReader).size)
	return rc, nil
}

// open makes one download attempt.
func (b *Blobs) open(ctx context.Context, path, sasURL string) (io.ReadCloser, error) {
	client, err := blob.NewClientWithNoCredential(sasURL, b.opts)
	if err != nil {
		return nil, &BlobError{Path: path, Err: fmt.Errorf("bad blob URL: %w", stripURLQuery(err))}
	}
	resp, err := client.DownloadStream(ctx, nil)
	if err != nil {
		return nil, classify(path, err)
	}
	pending := resp.CopyStatus != nil && *resp.CopyStatus == blob.CopyStatusTypePending
	if pending || (resp.ContentLength != nil && *resp.ContentLength == 0) {
		_ = resp.Body.Close()
		msg := "x-ms-copy-status: pending"
		if !pending {
			msg = "empty blob (copy not finished?)"
		}
		return nil, &BlobError{Path: path, Err: fmt.Errorf("%w: %s", ErrCopyPending, msg), retry: true}
	}
	size := int64(-1)
	if resp.ContentLength != nil {
		size = *resp.ContentLength
	}
	log := b.cfg.Logger
	rr := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{
		MaxRetries: 5,
		OnFailedRead: func(failures int32, lastErr error, rng blob.HTTPRange, willRetry bool) {
			log.Warn().Str("blob", path).Int32("failures", failures).Int64("offset", rng.Offset).
				Bool("resuming", willRetry).Str("error", redact.String(stripURLQuery(lastErr).Error())).Msg("blob read cut, resuming with a Range request")
		},
	})
	src := &countingReader{r: rr, total: &b.bytes}
	pr := &partReader{path: path, body: rr, src: src, size: size}
	gz, err := gzip.NewReader(src)
	if err != nil {
		_ = rr.Close()
		return nil, pr.classify(err)
	}
	pr.gz = gz
	return pr, nil
}

// classify turns an azblob / transport error into a *BlobError.
func classify(path string, err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		be := &BlobError{Path: path, Status: re.StatusCode, Code: re.ErrorCode}
		switch {
		case re.StatusCode == http.StatusNotFound:
			be.Err = ErrNotFound
		case re.StatusCode == http.StatusForbidden && re.ErrorCode == "AuthenticationFailed":
			be.Err, be.retry = ErrSASExpired, true
		case re.StatusCode == http.StatusForbidden && re.ErrorCode == "":
			be.Err = errors.New("access refused without a storage error code: by something between this host and storage (a proxy or firewall?)")
		case re.StatusCode == http.StatusForbidden:
			be.Err = errors.New("storage refused access to the blob (the SAS URL is valid but not for this request or this client address)")
		case re.StatusCode == http.StatusTooManyRequests || re.StatusCode == http.StatusRequestTimeout || re.StatusCode >= 500:
			be.Err, be.retry = errors.New("transient storage error"), true
		default:
			be.Err = errors.New("storage refused the request")
		}
		return be
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &BlobError{Path: path, Err: err}
	}
	var be *BlobError
	if errors.As(err, &be) {
		return err
	}
	return &BlobError{Path: path, Err: stripURLQuery(err), retry: true}
}

// countingReader counts bytes and remembers the source's last error.
type countingReader struct {
	r     io.Reader
	total *atomic.Int64
	n     int64
	err   error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.total.Add(int64(n))
	if err != nil {
		c.err = err
	}
	return n, err
}

// partReader is the decompressed stream of one part.
type partReader struct {
	path string
	body io.ReadCloser
	src  *countingReader
	gz   *gzip.Reader
	size int64 // Content-Length of the blob, -1 if unknown
}

func (r *partReader) Read(p []byte) (int, error) {
	n, err := r.gz.Read(p)
	if err == nil || err == io.EOF {
		return n, err
	}
	return n, r.classify(err)
}

// classify decides whether a decompression error comes from the source
// (retryable) or from the content (ErrCorrupt).
func (r *partReader) classify(err error) error {
	srcErr := r.src.err
	if srcErr != nil && srcErr != io.EOF {
		return classify(r.path, srcErr)
	}
	if srcErr == io.EOF && r.size >= 0 && r.src.n < r.size {
		return &BlobError{Path: r.path, Err: fmt.Errorf("download ended after %d of %d bytes: %w", r.src.n, r.size, io.ErrUnexpectedEOF), retry: true}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &BlobError{Path: r.path, Err: fmt.Errorf("%w: gzip stream ends early although the whole blob (%d bytes) was read", ErrCorrupt, r.src.n)}
	}
	return &BlobError{Path: r.path, Err: fmt.Errorf("%w: %v", ErrCorrupt, err)}
}

func (r *partReader) Close() error {
	if r.gz != nil {
		_ = r.gz.Close()
	}
	return r.body.Close()
}
