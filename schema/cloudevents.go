package schema

import "time"

// Headers of the CloudEvents Kafka protocol binding, binary content mode
// (README "CloudEvents"), carried by every record and marker when enabled.
const (
	HeaderCESpecVersion = "ce_specversion"
	HeaderCEID          = "ce_id"
	HeaderCESource      = "ce_source"
	HeaderCEType        = "ce_type"
	HeaderCETime        = "ce_time"
	HeaderCESubject     = "ce_subject"

	// CloudEventsSpecVersion is the value of ce_specversion.
	CloudEventsSpecVersion = "1.0"
	// DefaultTenant names the tenant in ce_source when none is configured.
	DefaultTenant = "default"
)

// CloudEventsSource is the ce_source of an export's events:
// tvm2kafka/<tenant>/<export> (tenant "" is DefaultTenant).
func CloudEventsSource(tenant, export string) string {
	if tenant == "" {
		tenant = DefaultTenant
	}
	return "tvm2kafka/" + tenant + "/" + export
}

// CloudEventsType is the ce_type of a record (kind "record") or of a
// marker (kind its MarkerKind): com.microsoft.defender.vm.<export>.<kind>.
func CloudEventsType(export, kind string) string {
	return "com.microsoft.defender.vm." + export + "." + kind
}

// CloudEventsTime is the ce_time of an export's events: its generatedTime
// as RFC 3339 in UTC, or as the API returned it when it is not a time.
func CloudEventsTime(generatedTime string) string {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999", "2006-01-02 15:04:05.9999999"} {
		if t, err := time.Parse(layout, generatedTime); err == nil {
			return t.UTC().Format(time.RFC3339Nano)
		}
	}
	return generatedTime
}
