// Package source performs all I/O toward Microsoft Defender and Azure Blob
// storage: Entra ID credentials (azidentity, or a static bearer token), the
// export manifest client (GET /api/machines/InfoGatheringExport) behind a
// client-side sliding-window rate limiter (5 calls a minute, 20 an hour),
// and the blob part opener (azblob) that retries transient failures, waits
// for blobs whose copy is still pending, refreshes expired SAS URLs by
// fetching the manifest again, resumes cut downloads with Range requests
// and decompresses the gzip parts while streaming.
//
// Errors and log lines name blobs by their path (schema.BlobPath), never
// with the SAS query; client secrets and bearer tokens never appear in
// either.
package source
