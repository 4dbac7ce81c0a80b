package schema

import (
	"net/url"
	"sort"
	"strings"
	"time"
)

// ExportInfoGathering is the export name of GET /api/machines/InfoGatheringExport.
const ExportInfoGathering = "InfoGatheringExport"

// Header names of record, marker and dead-letter messages (README "Messages").
const (
	HeaderExport        = "mde.export"
	HeaderGeneratedTime = "mde.generated_time"
	HeaderRunID         = "mde.run_id"
	HeaderPart          = "mde.part"
	HeaderLine          = "mde.line"
	HeaderContentType   = "content-type"
	HeaderMarker        = "mde.marker"
	HeaderError         = "mde.error"
	// HeaderKey is the natural key of a record: for an export with one
	// record per device its DeviceId, for the others the compact JSON
	// object of its key columns (Export.Key).
	HeaderKey = "mde.key"

	// ContentTypeJSON is the content-type header value of record messages.
	ContentTypeJSON = "application/json"

	// MarkerKey is the key of every snapshot marker message. DeviceIds are
	// 40 hexadecimal characters, so it never clashes with a record key;
	// a record whose DeviceId equals MarkerKey is rejected.
	MarkerKey = "mde.snapshot"
)

// MarkerKind is the value of the mde.marker header and the marker field.
type MarkerKind string

// The three snapshot markers.
const (
	MarkerStart MarkerKind = "snapshot-start"
	MarkerEnd   MarkerKind = "snapshot-end"
	MarkerAbort MarkerKind = "snapshot-abort"
)

// Marker is the JSON value of a marker message. Records, PartitionRecords
// and Rejected are set on snapshot-end only; Reason on snapshot-abort only.
type Marker struct {
	Kind             MarkerKind `json:"marker"`
	Export           string     `json:"export"`
	GeneratedTime    string     `json:"generatedTime"`
	RunID            string     `json:"runId"`
	Partition        int        `json:"partition"`
	Partitions       int        `json:"partitions"`
	Parts            int        `json:"parts"`
	Time             time.Time  `json:"time"`
	Records          *int64     `json:"records,omitempty"`
	PartitionRecords *int64     `json:"partitionRecords,omitempty"`
	Rejected         *int64     `json:"rejected,omitempty"`
	Reason           string     `json:"reason,omitempty"`
}

// Manifest is one answer of an export API: the part files of one snapshot.
type Manifest struct {
	// Export is the export's name, e.g. ExportInfoGathering.
	Export string
	// GeneratedTime is generatedTime exactly as the API returned it.
	GeneratedTime string
	// Parts are sorted by Path; Parts[i].Index == i.
	Parts []Part
}

// Part is one gzip part file of an export.
type Part struct {
	// Index is the 0-based position after sorting the export's URLs by
	// blob path; it is the mde.part header and stays stable when the
	// URLs are fetched again.
	Index int
	// URL is the full SAS URL. It carries a signature: never log it.
	URL string
	// Path is URL without its query string: safe to log.
	Path string
}

// BlobPath returns rawURL without its query string and fragment, the form
// in which a blob URL may be logged and by which parts are sorted.
func BlobPath(rawURL string) string {
	if i := strings.IndexAny(rawURL, "?#"); i >= 0 {
		return rawURL[:i]
	}
	return rawURL
}

// NewManifest builds a Manifest from the URLs an export API answered,
// sorted by blob path and numbered from 0. It rejects URLs that are not
// absolute http(s) URLs and duplicate blob paths; errors never contain a
// URL's query string.
func NewManifest(export, generatedTime string, urls []string) (Manifest, error) {
	parts := make([]Part, 0, len(urls))
	seen := make(map[string]bool, len(urls))
	for i, raw := range urls {
		p := BlobPath(raw)
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return Manifest{}, &ManifestError{Index: i, Path: p, Reason: "not an absolute http(s) URL"}
		}
		if seen[p] {
			return Manifest{}, &ManifestError{Index: i, Path: p, Reason: "duplicate blob path"}
		}
		seen[p] = true
		parts = append(parts, Part{URL: raw, Path: p})
	}
	sort.Slice(parts, func(a, b int) bool { return parts[a].Path < parts[b].Path })
	for i := range parts {
		parts[i].Index = i
	}
	return Manifest{Export: export, GeneratedTime: generatedTime, Parts: parts}, nil
}

// ManifestError reports an unusable URL in an export answer.
type ManifestError struct {
	Index  int    // position in the API's answer
	Path   string // blob path, without query
	Reason string
}

func (e *ManifestError) Error() string {
	return "export file " + itoa(e.Index) + " (" + e.Path + "): " + e.Reason
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	neg := i < 0
	if neg {
		i = -i
	}
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			break
		}
	}
	if neg {
		n--
		b[n] = '-'
	}
	return string(b[n:])
}
