package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"golang.org/x/sync/errgroup"
)

// The Azure Storage emulator's published development account.
const (
	devAccount = "devstoreaccount1"
	devKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

func cmdUpload(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("upload", flag.ContinueOnError)
	dir := fs.String("dir", "", "data directory written by `gen gen` (required)")
	blobURL := fs.String("blob", "http://127.0.0.1:10000/"+devAccount, "blob service URL")
	account := fs.String("account", devAccount, "storage account")
	key := fs.String("key", devKey, "storage account key")
	valid := fs.Duration("sas-valid", 24*time.Hour, "lifetime of the SAS URLs")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return usageError{fmt.Errorf("upload: --dir is required")}
	}
	l, err := readLayout(*dir)
	if err != nil {
		return err
	}
	urls, err := upload(ctx, *dir, l, strings.TrimSuffix(*blobURL, "/"), *account, *key, *valid)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*dir, "urls.txt"), []byte(strings.Join(urls, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("write urls: %w", err)
	}
	fmt.Fprintf(stdout, "uploaded %d parts to %s/%s\n", len(urls), *blobURL, l.Container)
	return nil
}

// upload puts every part of l into container l.Container under its blob
// name and returns read-only service SAS URLs, in layout order.
func upload(ctx context.Context, dir string, l Layout, serviceURL, account, key string, valid time.Duration) ([]string, error) {
	cred, err := azblob.NewSharedKeyCredential(account, key)
	if err != nil {
		return nil, fmt.Errorf("shared key: %w", err)
	}
	client, err := azblob.NewClientWithSharedKeyCredential(serviceURL+"/", cred, nil)
	if err != nil {
		return nil, fmt.Errorf("blob client: %w", err)
	}
	if _, err := client.CreateContainer(ctx, l.Container, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return nil, fmt.Errorf("create container %s: %w", l.Container, err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, pf := range l.Files {
		g.Go(func() error {
			f, err := os.Open(filepath.Join(dir, pf.File))
			if err != nil {
				return fmt.Errorf("open part: %w", err)
			}
			defer f.Close()
			_, err = client.UploadFile(gctx, l.Container, pf.Blob, f, &azblob.UploadFileOptions{
				BlockSize:   8 << 20,
				Concurrency: 4,
			})
			if err != nil {
				return fmt.Errorf("upload %s: %w", pf.Blob, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	urls := make([]string, 0, len(l.Files))
	for _, pf := range l.Files {
		q, err := sas.BlobSignatureValues{
			Protocol:      sas.ProtocolHTTPSandHTTP,
			StartTime:     now.Add(-5 * time.Minute),
			ExpiryTime:    now.Add(valid),
			Permissions:   to.Ptr(sas.BlobPermissions{Read: true}).String(),
			ContainerName: l.Container,
			BlobName:      pf.Blob,
		}.SignWithSharedKey(cred)
		if err != nil {
			return nil, fmt.Errorf("sign %s: %w", pf.Blob, err)
		}
		urls = append(urls, blobURL(serviceURL, l.Container, pf.Blob)+"?"+q.Encode())
	}
	return urls, nil
}

// blobURL escapes each path segment of the blob name ("=" stays as it is,
// as in the real export's URLs).
func blobURL(serviceURL, container, blob string) string {
	segs := strings.Split(blob, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return serviceURL + "/" + container + "/" + strings.Join(segs, "/")
}
