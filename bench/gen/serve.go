package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ManifestPath is the Defender API path the fake answers (case-insensitively,
// as the real API does).
const ManifestPath = "/api/machines/InfoGatheringExport"

func cmdServeManifest(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve-manifest", flag.ContinueOnError)
	dir := fs.String("dir", "", "data directory with layout.json and urls.txt (required)")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return usageError{fmt.Errorf("serve-manifest: --dir is required")}
	}
	l, err := readLayout(*dir)
	if err != nil {
		return err
	}
	urls, err := readURLs(filepath.Join(*dir, "urls.txt"))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: manifestHandler(urls, l.GeneratedTime), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "http://%s\n", ln.Addr())
	if f, ok := stdout.(*os.File); ok {
		_ = f.Sync()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

func readURLs(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read urls (run `gen upload` first): %w", err)
	}
	defer f.Close()
	var urls []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if u := strings.TrimSpace(sc.Text()); u != "" {
			urls = append(urls, u)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read urls: %w", err)
	}
	if len(urls) == 0 {
		return nil, fmt.Errorf("%s holds no URL", path)
	}
	return urls, nil
}

// manifestResponse is the InfoGatheringExport answer.
type manifestResponse struct {
	Context       string   `json:"@odata.context"`
	ExportFiles   []string `json:"exportFiles"`
	GeneratedTime string   `json:"generatedTime"`
}

// manifestHandler answers GET /api/machines/InfoGatheringExport, with any
// bearer token, with the given export files; anything else is 404, a
// request without a bearer token 401.
func manifestHandler(urls []string, generatedTime string) http.Handler {
	body, _ := json.Marshal(manifestResponse{
		Context:       "https://api.securitycenter.microsoft.com/api/$metadata#microsoft.windowsDefenderATP.api.ExportFilesResponse",
		ExportFiles:   urls,
		GeneratedTime: generatedTime,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.URL.Path, ManifestPath) {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); !ok || tok == "" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"code":"Unauthorized","message":"missing bearer token"}}`)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(body)
	})
}
