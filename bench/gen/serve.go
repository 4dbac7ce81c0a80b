package main

import (
	"bufio"
	"context"
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

	"github.com/tvm2kafka/tvm2kafka/internal/fakes"
)

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
	// The fake Defender API of the tests, answering these URLs to any
	// bearer token.
	export := l.Export
	if export == "" {
		export = "InfoGatheringExport"
	}
	handler := fakes.DefenderHandler(fakes.DefenderConfig{ManifestOf: func(name string) ([]string, string, int) {
		if !strings.EqualFold(name, export) {
			return nil, "", http.StatusNotFound
		}
		return urls, l.GeneratedTime, 0
	}})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
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
