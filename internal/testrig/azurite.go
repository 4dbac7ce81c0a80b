//go:build integration

package testrig

import (
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
)

// The well-known development storage account that Azurite serves. This key is
// public (documented by Microsoft for the emulator) and not a secret.
const (
	AzuriteAccount = "devstoreaccount1"
	AzuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// SASOptions tunes the SAS URLs UploadBlobsWithSAS hands out.
type SASOptions struct {
	// Expiry is the SAS lifetime from now; zero means one hour. A negative value
	// makes an already expired SAS (the signature is valid, the time is not).
	Expiry time.Duration
}

// AzuriteService returns a shared-key client for the Azurite blob service. It
// skips the test when IT_AZURITE_BLOB is unset.
func (r Rig) AzuriteService(t testing.TB) *service.Client {
	t.Helper()
	if r.AzuriteBlob == "" {
		t.Skip("IT_AZURITE_BLOB is not set: start scripts/azurite.sh and eval \"$(scripts/azurite.sh env)\"")
	}
	cred, err := service.NewSharedKeyCredential(AzuriteAccount, AzuriteKey)
	if err != nil {
		t.Fatalf("testrig: azurite credential: %v", err)
	}
	opts := &service.ClientOptions{}
	opts.Retry = policy.RetryOptions{MaxRetries: 2, RetryDelay: 100 * time.Millisecond}
	svc, err := service.NewClientWithSharedKeyCredential(r.AzuriteBlob+"/", cred, opts)
	if err != nil {
		t.Fatalf("testrig: azurite client: %v", err)
	}
	return svc
}

// UploadBlobs creates container (if missing) in Azurite, uploads each blob
// (name → content; names may contain '/'), and returns, per name, a real
// service SAS URL with read permission that expires in one hour.
func (r Rig) UploadBlobs(t testing.TB, containerName string, blobs map[string][]byte) (sasURLs map[string]string) {
	t.Helper()
	return r.UploadBlobsWithSAS(t, containerName, blobs, SASOptions{})
}

// UploadBlobsWithSAS is UploadBlobs with control over the SAS URLs.
func (r Rig) UploadBlobsWithSAS(t testing.TB, containerName string, blobs map[string][]byte, o SASOptions) (sasURLs map[string]string) {
	t.Helper()
	svc := r.AzuriteService(t)
	ctx := testContext(t, 5*time.Minute)
	cc := svc.NewContainerClient(containerName)
	if _, err := cc.Create(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		t.Fatalf("testrig: create container %s: %v", containerName, err)
	}
	names := make([]string, 0, len(blobs))
	for name := range blobs {
		names = append(names, name)
	}
	sort.Strings(names)
	sasURLs = make(map[string]string, len(blobs))
	for _, name := range names {
		bb := cc.NewBlockBlobClient(name)
		if _, err := bb.UploadBuffer(ctx, blobs[name], nil); err != nil {
			t.Fatalf("testrig: upload %s/%s: %v", containerName, name, err)
		}
		u, err := r.BlobSASURL(containerName, name, o)
		if err != nil {
			t.Fatalf("testrig: %v", err)
		}
		sasURLs[name] = u
	}
	return sasURLs
}

// BlobSASURL returns a read-only service SAS URL for an existing or future blob.
func (r Rig) BlobSASURL(containerName, blobName string, o SASOptions) (string, error) {
	if r.AzuriteBlob == "" {
		return "", errors.New("testrig: IT_AZURITE_BLOB is not set")
	}
	cred, err := container.NewSharedKeyCredential(AzuriteAccount, AzuriteKey)
	if err != nil {
		return "", err
	}
	cc, err := container.NewClientWithSharedKeyCredential(r.AzuriteBlob+"/"+containerName, cred, nil)
	if err != nil {
		return "", err
	}
	bb := cc.NewBlockBlobClient(blobName)
	expiry := o.Expiry
	if expiry == 0 {
		expiry = time.Hour
	}
	now := time.Now().UTC()
	start := now.Add(-5 * time.Minute)
	if expiry < 0 {
		start = now.Add(expiry - time.Hour)
	}
	qp, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		StartTime:     start,
		ExpiryTime:    now.Add(expiry),
		Permissions:   (&sas.BlobPermissions{Read: true}).String(),
		ContainerName: containerName,
		BlobName:      blobName,
	}.SignWithSharedKey(cred)
	if err != nil {
		return "", err
	}
	return bb.URL() + "?" + qp.Encode(), nil
}
