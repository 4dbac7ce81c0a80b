package synth

import (
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

// DefaultGeneratedTime is the export's generatedTime when Options.GeneratedTime is zero.
var defaultGeneratedTime = time.Date(2026, time.November, 27, 10, 1, 0, 0, time.UTC)

// DefaultGeneratedTime returns the generatedTime used when Options.GeneratedTime is zero.
func DefaultGeneratedTime() time.Time { return defaultGeneratedTime }

// Options selects one synthetic snapshot.
type Options struct {
	// Export is the export to generate (schema.Exports; "" or an unknown
	// name: InfoGatheringExport).
	Export string
	// Devices is the number of records (lines) in the whole snapshot
	// (negative counts as 0): one per device for InfoGatheringExport,
	// RowsPerDevice(Export) consecutive ones per device for the others.
	Devices int
	// Parts is the number of gzip part files (less than 1 counts as 1).
	Parts int
	// Seed makes the snapshot reproducible: same Options, same bytes.
	Seed int64
	// GeneratedTime is the export's generatedTime; zero means DefaultGeneratedTime().
	GeneratedTime time.Time
	// ChangeEvery > 0 changes every ChangeEvery-th device (index divisible
	// by it): its DeviceName gets the suffix "-r2". Every other record is
	// byte for byte the same as without it: a later export of the same
	// devices in which 1/ChangeEvery of them changed.
	ChangeEvery int
}

// Layout is where and how a snapshot is stored.
type Layout struct {
	// GeneratedTime is the export's generatedTime in RFC 3339, e.g. "2026-11-27T10:01:00Z".
	GeneratedTime string
	// Container is the blob container name, e.g. "temp-<uuid>".
	Container string
	// Parts are sorted by Name, so Parts[i] is the part with mde.part == i;
	// their device ranges are contiguous and ascending.
	Parts []PartSpec
}

// PartSpec is one part file of a snapshot.
type PartSpec struct {
	// Name is the blob path inside the container:
	// "<date>/1001/<export folder>/json/OrgId=<uuid>/_RbacGroupId=<n>/part-0000N-<uuid>.c000.json.gz"
	// (the folder of schema.Export, e.g. InfoGatheringExport or VaExport).
	Name string
	// Devices is the number of records (lines) in the part.
	Devices int
	// First is the index of the part's first device.
	First int
	// RbacGroupID is the RBAC group of every device in the part.
	RbacGroupID int
}

func (o Options) norm() Options {
	if o.Devices < 0 {
		o.Devices = 0
	}
	if o.Parts < 1 {
		o.Parts = 1
	}
	if o.GeneratedTime.IsZero() {
		o.GeneratedTime = defaultGeneratedTime
	}
	o.GeneratedTime = o.GeneratedTime.UTC().Truncate(time.Second)
	if e, ok := schema.LookupExport(o.Export); ok {
		o.Export = e.Name
	} else {
		o.Export = schema.ExportInfoGathering
	}
	return o
}

// Plan returns the layout of the snapshot: the devices are split unevenly
// across the parts, as in a real export, and every device is in exactly
// one part.
func Plan(opts Options) Layout {
	o := opts.norm()
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0x6c61796f7574)) // "layout"
	container := "temp-" + uuid(rng)
	org := uuid(rng)
	fileID := uuid(rng)

	// Uneven split: weights in [0.5, 1.5).
	weights := make([]float64, o.Parts)
	var total float64
	for i := range weights {
		weights[i] = 0.5 + rng.Float64()
		total += weights[i]
	}
	// RBAC groups: 0 (unassigned) for the first part, distinct ids for the others.
	groups := make([]int, o.Parts)
	used := map[int]bool{0: true}
	for i := 1; i < o.Parts; i++ {
		g := 1 + rng.IntN(30000)
		for used[g] {
			g = 1 + rng.IntN(30000)
		}
		used[g] = true
		groups[i] = g
	}
	date := o.GeneratedTime.Format("2006-01-02")
	folder := schema.ExportInfoGathering
	if e, ok := schema.LookupExport(o.Export); ok {
		folder = e.Folder
	}
	per := RowsPerDevice(o.Export)
	parts := make([]PartSpec, o.Parts)
	var acc float64
	prev := 0
	for i := range parts {
		acc += weights[i]
		end := int(float64(o.Devices) * acc / total)
		end -= end % per // a device's records stay in one part, as in Defender's (by RBAC group)
		if end < prev {
			end = prev
		}
		if i == o.Parts-1 {
			end = o.Devices
		}
		parts[i] = PartSpec{
			Name: fmt.Sprintf("%s/1001/%s/json/OrgId=%s/_RbacGroupId=%d/part-%05d-%s.c000.json.gz",
				date, folder, org, groups[i], i, fileID),
			Devices:     end - prev,
			RbacGroupID: groups[i],
		}
		prev = end
	}
	sort.Slice(parts, func(a, b int) bool { return parts[a].Name < parts[b].Name })
	first := 0
	for i := range parts {
		parts[i].First = first
		first += parts[i].Devices
	}
	return Layout{
		GeneratedTime: o.GeneratedTime.Format(time.RFC3339),
		Container:     container,
		Parts:         parts,
	}
}

func uuid(rng *rand.Rand) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], rng.Uint64())
	binary.BigEndian.PutUint64(b[8:], rng.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// WritePart writes part p of the snapshot to w as a gzip file (one record
// and "\n" per device) and returns the number of lines written. Memory use
// is constant whatever p.Devices is.
func WritePart(w io.Writer, opts Options, p PartSpec) (lines int, err error) {
	zw, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
	if err != nil {
		return 0, fmt.Errorf("synth: gzip writer: %w", err)
	}
	g := newGen(opts)
	buf := make([]byte, 0, 128<<10)
	for i := p.First; i < p.First+p.Devices; i++ {
		buf = g.appendLine(buf, i, p.RbacGroupID)
		buf = append(buf, '\n')
		lines++
		if len(buf) >= 112<<10 {
			if _, err := zw.Write(buf); err != nil {
				return lines, fmt.Errorf("synth: write part %s: %w", p.Name, err)
			}
			buf = buf[:0]
		}
	}
	if _, err := zw.Write(buf); err != nil {
		return lines, fmt.Errorf("synth: write part %s: %w", p.Name, err)
	}
	if err := zw.Close(); err != nil {
		return lines, fmt.Errorf("synth: close part %s: %w", p.Name, err)
	}
	return lines, nil
}

// Record returns the JSON line of device i (without its newline), exactly
// as WritePart writes it.
func Record(opts Options, i int) []byte {
	o := opts.norm()
	group := 0
	for _, p := range Plan(o).Parts {
		if i >= p.First && i < p.First+p.Devices {
			group = p.RbacGroupID
			break
		}
	}
	return newGen(o).appendLine(nil, i, group)
}

// DeviceID returns the DeviceId of record i: 40 lowercase hex characters,
// unique per device for a seed (records of one device share it).
func DeviceID(opts Options, i int) string {
	var b [40]byte
	appendDeviceID(b[:0], opts.Seed, i/RowsPerDevice(opts.Export))
	return string(b[:])
}

func appendDeviceID(dst []byte, seed int64, i int) []byte {
	var in [16]byte
	binary.BigEndian.PutUint64(in[:8], uint64(seed))
	binary.BigEndian.PutUint64(in[8:], uint64(i))
	sum := sha1.Sum(in[:])
	return hex.AppendEncode(dst, sum[:])
}

// gen builds records; it reuses its buffers and random source, so it is
// not safe for concurrent use.
type gen struct {
	export string
	seed   int64
	now    int64 // generatedTime, Unix seconds
	change int   // Options.ChangeEvery
	pcg    *rand.PCG
	rng    *rand.Rand
	inner  []byte
	scan   []byte
}

func newGen(opts Options) *gen {
	o := opts.norm()
	pcg := rand.NewPCG(0, 0)
	return &gen{
		export: o.Export,
		seed:   o.Seed,
		now:    o.GeneratedTime.Unix(),
		change: o.ChangeEvery,
		pcg:    pcg,
		rng:    rand.New(pcg),
		inner:  make([]byte, 0, 1024),
		scan:   make([]byte, 0, 256),
	}
}

type platform struct {
	name     string
	versions []string
	prefixes []string
	weight   int
}

var platforms = []platform{
	{"Windows11", []string{"10.0.22631.4602", "10.0.22631.4460", "10.0.26100.2605", "10.0.22621.4541"}, []string{"ws", "lt", "desk"}, 40},
	{"Windows10", []string{"10.0.19045.5247", "10.0.19045.5131", "10.0.19044.5131"}, []string{"ws", "lt", "kiosk"}, 24},
	{"WindowsServer2022", []string{"10.0.20348.2966", "10.0.20348.2849"}, []string{"srv", "sql", "iis", "dc"}, 12},
	{"WindowsServer2019", []string{"10.0.17763.6659", "10.0.17763.6532"}, []string{"srv", "app", "dc"}, 8},
	{"WindowsServer2016", []string{"10.0.14393.7606"}, []string{"srv", "legacy"}, 3},
	{"Linux", []string{"Ubuntu 22.04", "Ubuntu 24.04", "RHEL 9.4", "Debian 12", "Amazon Linux 2023"}, []string{"lnx", "k8s-node", "web", "db"}, 9},
	{"macOS", []string{"14.7.1", "15.1.1", "13.7.1"}, []string{"mac", "mbp"}, 4},
}

var platformTotal = func() int {
	t := 0
	for _, p := range platforms {
		t += p.weight
	}
	return t
}()

var (
	domains         = []string{"corp.contoso.com", "eu.fabrikam.local", "ad.northwind.net", "na.tailspintoys.com", "hq.woodgrove.org"}
	engineVersions  = []string{"1.1.24090.11", "1.1.24080.9", "1.1.24070.3", "1.1.24060.5"}
	platformVers    = []string{"4.18.24090.11", "4.18.24080.9", "4.18.24070.5", "4.18.24060.7"}
	triState        = []string{"True", "True", "True", "True", "False", "Unknown"}
	cloudStates     = []string{"Enabled", "Enabled", "Enabled", "Disabled", "NotConfigured"}
	log4jStates     = []string{"NotVulnerable", "NotVulnerable", "NotVulnerable", "Vulnerable", "Unknown"}
	tlsStates       = []string{"Disabled", "Disabled", "Enabled", "NotConfigured"}
	scanStatuses    = []string{"Completed", "Completed", "Completed", "Cancelled", "Failed"}
	tamperStates    = []string{"Enabled", "Enabled", "Disabled"}
	ebpfStates      = []string{"Enabled", "Enabled", "Disabled"}
	groupNameStems  = []string{"Workstations", "Servers", "Finance", "Engineering", "Zürich Office", "Sales-EMEA", "Production", "Lab"}
	extraExposure   = []string{"Low", "Medium", "High"}
	extraOnboarding = []string{"Onboarded", "CanBeOnboarded", "InsufficientInfo"}
)

func (g *gen) pick(s []string) string { return s[g.rng.IntN(len(s))] }

// appendLine appends record i of the generator's export.
func (g *gen) appendLine(dst []byte, i, group int) []byte {
	if g.export != schema.ExportInfoGathering {
		return g.appendExportRecord(dst, g.export, i, group)
	}
	return g.appendRecord(dst, i, group)
}

func (g *gen) appendRecord(dst []byte, i, group int) []byte {
	g.pcg.Seed(uint64(g.seed), uint64(i)^0x9e3779b97f4a7c15)
	r := g.rng

	n := r.IntN(platformTotal)
	pl := &platforms[0]
	for k := range platforms {
		if n < platforms[k].weight {
			pl = &platforms[k]
			break
		}
		n -= platforms[k].weight
	}
	linux := pl.name == "Linux"

	lastSeen := g.now - int64(r.IntN(14*24*3600))
	stamp := g.now - int64(r.IntN(6*3600))

	dst = append(dst, `{"DeviceId":"`...)
	dst = appendDeviceID(dst, g.seed, i)
	dst = append(dst, `","DeviceName":"`...)
	dst = append(dst, g.pick(pl.prefixes)...)
	dst = append(dst, '-')
	dst = appendPad(dst, i%10000000, 7)
	if g.change > 0 && i%g.change == 0 {
		dst = append(dst, "-r2"...)
	}
	dst = append(dst, '.')
	dst = append(dst, g.pick(domains)...)
	dst = append(dst, `","OsPlatform":"`...)
	dst = append(dst, pl.name...)
	dst = append(dst, `","OsVersion":"`...)
	dst = append(dst, g.pick(pl.versions)...)
	dst = append(dst, `","RbacGroupId":`...)
	dst = strconv.AppendInt(dst, int64(group), 10)
	dst = append(dst, `,"RbacGroupName":`...)
	if group == 0 {
		dst = append(dst, `"UnassignedGroup"`...)
	} else {
		// Group names are plain text (UTF-8, no quotes or backslashes).
		dst = append(dst, '"')
		dst = append(dst, groupNameStems[group%len(groupNameStems)]...)
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, int64(group), 10)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"LastSeenTime":"`...)
	dst = appendSpaceTime(dst, lastSeen)
	dst = append(dst, `","Timestamp":"`...)
	dst = appendSpaceTime(dst, stamp)
	dst = append(dst, '"')

	// Undocumented extra column, about 1 device in 50.
	if r.IntN(50) == 0 {
		switch r.IntN(4) {
		case 0:
			dst = append(dst, `,"ExposureLevel":"`...)
			dst = append(dst, g.pick(extraExposure)...)
			dst = append(dst, '"')
		case 1:
			dst = append(dst, `,"OnboardingStatus":"`...)
			dst = append(dst, g.pick(extraOnboarding)...)
			dst = append(dst, '"')
		case 2:
			dst = append(dst, `,"IsExcluded":`...)
			dst = strconv.AppendBool(dst, r.IntN(3) == 0)
		default:
			dst = append(dst, `,"MachineTags":["`...)
			dst = append(dst, g.pick(groupNameStems)...)
			dst = append(dst, `","tier-`...)
			dst = strconv.AppendInt(dst, int64(r.IntN(3)), 10)
			dst = append(dst, `"]`...)
		}
	}

	// DeviceGatheredInfo: a JSON object, encoded as a JSON string.
	in := g.inner[:0]
	mode := "0"
	if m := r.IntN(20); m < 5 {
		mode = [...]string{"1", "2", "3", "4", "5"}[m]
	}
	in = append(in, `{"AvMode":"`...)
	in = append(in, mode...)
	eng := r.IntN(len(engineVersions))
	in = append(in, `","AvEngineVersion":"`...)
	in = append(in, engineVersions[eng]...)
	in = append(in, `","AvSignatureVersion":"1.421.`...)
	in = strconv.AppendInt(in, int64(100+r.IntN(1500)), 10)
	in = append(in, `.0","AvPlatformVersion":"`...)
	in = append(in, platformVers[eng]...)
	in = append(in, `","AvEngineUpdateTime":"`...)
	in = appendISOTime(in, g.now-int64(r.IntN(30*24*3600)))
	in = append(in, `","AvSignatureUpdateTime":"`...)
	in = appendISOTime(in, g.now-int64(r.IntN(3*24*3600)))
	in = append(in, `","AvPlatformUpdateTime":"`...)
	in = appendISOTime(in, g.now-int64(r.IntN(45*24*3600)))
	in = append(in, `","AvIsSignatureUptoDate":"`...)
	in = append(in, g.pick(triState)...)
	in = append(in, `","AvIsEngineUptodate":"`...)
	in = append(in, g.pick(triState)...)
	in = append(in, `","AvIsPlatformUptodate":"`...)
	in = append(in, g.pick(triState)...)
	in = append(in, `","AvSignatureRing":"`...)
	in = strconv.AppendInt(in, int64(1+r.IntN(4)), 10)

	// AvScanResults: a JSON string inside the JSON string.
	sc := g.scan[:0]
	sc = append(sc, `{"Quick":{"ScanStatus":"`...)
	sc = append(sc, g.pick(scanStatuses)...)
	sc = append(sc, `","Timestamp":"`...)
	sc = appendISOTime(sc, g.now-int64(r.IntN(2*24*3600)))
	sc = append(sc, `"},"Full":{"ScanStatus":"`...)
	if r.IntN(3) == 0 {
		sc = append(sc, `NotRun","Timestamp":null}}`...)
	} else {
		sc = append(sc, g.pick(scanStatuses)...)
		sc = append(sc, `","Timestamp":"`...)
		sc = appendISOTime(sc, g.now-int64(r.IntN(30*24*3600)))
		sc = append(sc, `"}}`...)
	}
	g.scan = sc
	in = append(in, `","AvScanResults":`...)
	in = appendJSONString(in, sc)

	in = append(in, `,"CloudProtectionState":"`...)
	in = append(in, g.pick(cloudStates)...)
	in = append(in, `","TamperProtection":"`...)
	in = append(in, g.pick(tamperStates)...)
	in = append(in, `","Log4j_CVE_2021_44228":"`...)
	in = append(in, g.pick(log4jStates)...)
	in = append(in, `","Log4JEnvironmentVariableMitigation":"`...)
	in = append(in, g.pick(triState)...)
	in = append(in, `","EBPFStatus":"`...)
	if linux {
		in = append(in, g.pick(ebpfStates)...)
	} else {
		in = append(in, "NotApplicable"...)
	}
	in = append(in, `","TlsClient10":"`...)
	in = append(in, g.pick(tlsStates)...)
	in = append(in, `","TlsServer10":"`...)
	in = append(in, g.pick(tlsStates)...)
	in = append(in, `","TlsClient11":"`...)
	in = append(in, g.pick(tlsStates)...)
	in = append(in, `"}`...)
	g.inner = in

	dst = append(dst, `,"DeviceGatheredInfo":`...)
	dst = appendJSONString(dst, in)
	dst = append(dst, '}')
	return dst
}

// appendJSONString appends s as a JSON string literal.
func appendJSONString(dst, s []byte) []byte {
	const hexd = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendPad(dst []byte, v, width int) []byte {
	var b [20]byte
	s := strconv.AppendInt(b[:0], int64(v), 10)
	for k := len(s); k < width; k++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

func appendDateClock(dst []byte, unix int64, dateSep, clockSep byte) []byte {
	t := time.Unix(unix, 0).UTC()
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	dst = appendPad(dst, y, 4)
	dst = append(dst, '-')
	dst = appendPad(dst, int(mo), 2)
	dst = append(dst, '-')
	dst = appendPad(dst, d, 2)
	dst = append(dst, dateSep)
	dst = appendPad(dst, h, 2)
	dst = append(dst, clockSep)
	dst = appendPad(dst, mi, 2)
	dst = append(dst, clockSep)
	return appendPad(dst, s, 2)
}

// appendSpaceTime appends "yyyy-MM-dd HH:mm:ss" (UTC, no zone), the format
// of the export's top-level times.
func appendSpaceTime(dst []byte, unix int64) []byte { return appendDateClock(dst, unix, ' ', ':') }

// appendISOTime appends "yyyy-MM-ddTHH:mm:ssZ".
func appendISOTime(dst []byte, unix int64) []byte {
	return append(appendDateClock(dst, unix, 'T', ':'), 'Z')
}
