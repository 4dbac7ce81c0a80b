package schema

import "strings"

// ColumnType is the type of a documented column of an export, as Defender
// writes it in the part files' JSON.
type ColumnType uint8

// The column types.
const (
	// TypeString is a JSON string.
	TypeString ColumnType = iota
	// TypeInt is a JSON integer.
	TypeInt
	// TypeDouble is a JSON number with a fraction (CvssScore).
	TypeDouble
	// TypeBool is true or false.
	TypeBool
	// TypeTime is a string holding one of Defender's timestamps:
	// "yyyy-MM-dd HH:mm:ss[.fffffff]" (UTC, no zone) or RFC 3339.
	TypeTime
	// TypeStrings is an array of strings (DiskPaths, RegistryPaths).
	TypeStrings
	// TypeJSONString is a string holding a JSON object or array
	// (DeviceGatheredInfo, AdditionalFields).
	TypeJSONString
	// TypeObject is a JSON object or an array of objects (IssuedTo,
	// Permissions).
	TypeObject
)

var typeNames = [...]string{"string", "int", "double", "bool", "timestamp", "string array", "JSON in a string", "object"}

func (t ColumnType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "unknown"
}

// Column is one documented column of an export.
type Column struct {
	Name string
	Type ColumnType
}

// Export declares one of Defender Vulnerability Management's "export via
// files" APIs, GET /api/machines/<Name>: everything that differs between
// them. Keys, the mde.key header, the table topic's keys, the fakes'
// routes, the synthetic data and the documentation all derive from it.
type Export struct {
	// Name is the API's name, e.g. "SoftwareVulnerabilitiesExport".
	Name string
	// Short names the export in the default topic, "mde.<Short>".
	Short string
	// Key are the columns that identify a record (the natural key), in
	// the order of the key encoding; Key[0] is always "DeviceId".
	Key []string
	// Permission is the WindowsDefenderATP application permission the
	// API requires.
	Permission string
	// Record says in a few words what one line of the export is.
	Record string
	// Folder is the folder of the part files in Defender's blob paths
	// (".../<date>/<hhmm>/<Folder>/json/OrgId=.../part-...").
	Folder string
	// Columns are the documented columns, in Defender's spelling.
	Columns []Column
}

// Topic is the export's default topic.
func (e Export) Topic() string { return "mde." + e.Short }

// Path is the API's path.
func (e Export) Path() string { return "/api/machines/" + e.Name }

// ManyPerDevice reports whether the export holds several records per
// device (its natural key has more than DeviceId).
func (e Export) ManyPerDevice() bool { return len(e.Key) > 1 }

// Column returns the documented column named name (case-insensitively).
func (e Export) Column(name string) (Column, bool) {
	for _, c := range e.Columns {
		if strings.EqualFold(c.Name, name) {
			return c, true
		}
	}
	return Column{}, false
}

// Column sets shared by several exports.
var (
	rbacColumns = []Column{{"RbacGroupId", TypeInt}, {"RbacGroupName", TypeString}}
)

func columns(groups ...[]Column) []Column {
	var out []Column
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// exports is the declaration of every export, in the order of the
// documentation. It is never modified; Exports and LookupExport hand out
// copies.
var exports = [...]Export{
	{
		Name: ExportInfoGathering, Short: "infogathering", Key: []string{"DeviceId"},
		Permission: "Vulnerability.Read.All", Folder: "InfoGatheringExport",
		Record: "one device and what Defender gathered on it (antivirus state, TLS settings, mitigations)",
		Columns: columns([]Column{
			{"DeviceId", TypeString}, {"DeviceName", TypeString}, {"OsPlatform", TypeString}, {"OsVersion", TypeString},
		}, rbacColumns, []Column{
			{"LastSeenTime", TypeTime}, {"Timestamp", TypeTime}, {"DeviceGatheredInfo", TypeJSONString},
		}),
	},
	{
		Name: "SoftwareVulnerabilitiesExport", Short: "vulnerabilities",
		Key:        []string{"DeviceId", "SoftwareVendor", "SoftwareName", "SoftwareVersion", "CveId"},
		Permission: "Vulnerability.Read.All", Folder: "VaExport",
		Record: "one vulnerability (CVE) of one software version on one device; CveId null for software without known CVEs",
		Columns: columns([]Column{
			{"Id", TypeString}, {"DeviceId", TypeString}, {"DeviceName", TypeString}, {"OSPlatform", TypeString}, {"OSVersion", TypeString},
		}, rbacColumns, []Column{
			{"SoftwareVendor", TypeString}, {"SoftwareName", TypeString}, {"SoftwareVersion", TypeString},
			{"CveId", TypeString}, {"CvssScore", TypeDouble}, {"VulnerabilitySeverityLevel", TypeString},
			{"ExploitabilityLevel", TypeString}, {"FirstSeenTimestamp", TypeTime}, {"LastSeenTimestamp", TypeTime},
			{"RecommendedSecurityUpdate", TypeString}, {"RecommendedSecurityUpdateId", TypeString},
			{"RecommendationReference", TypeString}, {"SecurityUpdateAvailable", TypeBool},
			{"DiskPaths", TypeStrings}, {"RegistryPaths", TypeStrings},
		}),
	},
	{
		Name: "SoftwareInventoryExport", Short: "software",
		Key:        []string{"DeviceId", "SoftwareVendor", "SoftwareName", "SoftwareVersion"},
		Permission: "Software.Read.All", Folder: "SoftwareInventoryExport",
		Record: "one installed software version (with a CPE) on one device",
		Columns: columns([]Column{
			{"DeviceId", TypeString}, {"DeviceName", TypeString}, {"OSPlatform", TypeString}, {"OSVersion", TypeString},
		}, rbacColumns, []Column{
			{"SoftwareVendor", TypeString}, {"SoftwareName", TypeString}, {"SoftwareVersion", TypeString},
			{"NumberOfWeaknesses", TypeInt}, {"EndOfSupportStatus", TypeString}, {"EndOfSupportDate", TypeTime},
			{"SoftwareFirstSeenTimestamp", TypeTime}, {"DiskPaths", TypeStrings}, {"RegistryPaths", TypeStrings},
		}),
	},
	{
		Name: "SoftwareInventoryNonCpeExport", Short: "software.noncpe",
		Key:        []string{"DeviceId", "SoftwareVendor", "SoftwareName", "SoftwareVersion"},
		Permission: "Software.Read.All", Folder: "NonCpeSoftwareInventoryExport",
		Record: "one installed software version without a CPE (no vulnerability assessment) on one device",
		Columns: columns([]Column{
			{"DeviceId", TypeString}, {"DeviceName", TypeString}, {"OSPlatform", TypeString}, {"OSVersion", TypeString},
		}, rbacColumns, []Column{
			{"SoftwareVendor", TypeString}, {"SoftwareName", TypeString}, {"SoftwareVersion", TypeString},
			{"SoftwareLastSeenTimestamp", TypeTime},
		}),
	},
	{
		Name: "SecureConfigurationsAssessmentExport", Short: "secureconfig",
		Key:        []string{"DeviceId", "ConfigurationId"},
		Permission: "Vulnerability.Read.All", Folder: "SecureConfigsAssessmentExport",
		Record: "one security configuration (scid-…) assessed on one device",
		Columns: columns([]Column{
			{"DeviceId", TypeString}, {"DeviceName", TypeString}, {"OSPlatform", TypeString}, {"OSVersion", TypeString},
		}, rbacColumns, []Column{
			{"ConfigurationId", TypeString}, {"ConfigurationName", TypeString}, {"ConfigurationCategory", TypeString},
			{"ConfigurationSubcategory", TypeString}, {"ConfigurationImpact", TypeDouble},
			{"IsApplicable", TypeBool}, {"IsCompliant", TypeBool}, {"IsExpectedUserImpact", TypeBool},
			{"RecommendationReference", TypeString}, {"Timestamp", TypeTime},
		}),
	},
	{
		Name: "BaselineComplianceAssessmentExport", Short: "baseline",
		Key:        []string{"DeviceId", "ProfileId", "ConfigurationId"},
		Permission: "SecurityBaselinesAssessment.Read.All", Folder: "BaselineAssessmentExport",
		Record: "one configuration of one security baseline profile assessed on one device",
		Columns: columns([]Column{
			{"Id", TypeString}, {"DeviceId", TypeString}, {"DeviceName", TypeString}, {"OSPlatform", TypeString}, {"OSVersion", TypeString},
		}, rbacColumns, []Column{
			{"ProfileId", TypeString}, {"ConfigurationId", TypeString}, {"IsApplicable", TypeBool}, {"IsCompliant", TypeBool},
			{"DataCollectionTimeOffset", TypeTime}, {"ComplianceCalculationTimeOffset", TypeTime},
			{"RecommendedValue", TypeStrings}, {"CurrentValue", TypeStrings}, {"Source", TypeStrings},
		}),
	},
	{
		Name: "CertificateAssessmentExport", Short: "certificates",
		Key:        []string{"DeviceId", "Thumbprint", "Path"},
		Permission: "Vulnerability.Read.All", Folder: "CertificateAssessmentExport",
		Record: "one certificate in one certificate store location on one device",
		Columns: columns([]Column{
			{"DeviceId", TypeString}, {"DeviceName", TypeString},
		}, rbacColumns, []Column{
			{"Thumbprint", TypeString}, {"Path", TypeString}, {"SignatureAlgorithm", TypeString}, {"KeySize", TypeInt},
			{"ExpirationDate", TypeTime}, {"IssueDate", TypeTime}, {"SubjectType", TypeString}, {"SerialNumber", TypeString},
			{"IssuedTo", TypeObject}, {"IssuedBy", TypeObject}, {"KeyUsage", TypeStrings}, {"ExtendedKeyUsage", TypeStrings},
		}),
	},
	{
		Name: "HardwareFirmwareInventoryExport", Short: "firmware",
		Key:        []string{"DeviceId", "ComponentType", "ComponentName"},
		Permission: "Software.Read.All", Folder: "FirmwareHardwareExport",
		Record: "one hardware or firmware component (BIOS, processor, system board) of one device",
		Columns: columns([]Column{
			{"DeviceId", TypeString}, {"DeviceName", TypeString},
		}, rbacColumns, []Column{
			{"ComponentType", TypeString}, {"Manufacturer", TypeString}, {"ComponentName", TypeString},
			{"ComponentVersion", TypeString}, {"AdditionalFields", TypeJSONString},
		}),
	},
	{
		Name: "BrowserExtensionsInventoryExport", Short: "browserextensions",
		Key:        []string{"DeviceId", "BrowserName", "ExtensionId"},
		Permission: "Software.Read.All", Folder: "BrowserExtensions",
		Record: "one extension installed in one browser on one device",
		Columns: columns([]Column{
			{"DeviceId", TypeString}, {"DeviceName", TypeString},
		}, rbacColumns, []Column{
			{"BrowserName", TypeString}, {"ExtensionId", TypeString}, {"ExtensionName", TypeString},
			{"ExtensionDescription", TypeString}, {"ExtensionVersion", TypeString}, {"ExtensionRisk", TypeString},
			{"IsActivated", TypeBool}, {"InstallationTime", TypeTime}, {"Permissions", TypeObject},
		}),
	},
}

// Exports returns every export, InfoGatheringExport first.
func Exports() []Export {
	out := make([]Export, len(exports))
	for i, e := range exports {
		out[i] = e.clone()
	}
	return out
}

// ExportNames returns the names of every export, in the order of Exports.
func ExportNames() []string {
	out := make([]string, len(exports))
	for i, e := range exports {
		out[i] = e.Name
	}
	return out
}

// LookupExport returns the export named name, matched case-insensitively.
func LookupExport(name string) (Export, bool) {
	for _, e := range exports {
		if strings.EqualFold(e.Name, name) {
			return e.clone(), true
		}
	}
	return Export{}, false
}

// KeysOf returns the natural key columns of the export named name: its
// declared key, or just DeviceId for a name that is not declared.
func KeysOf(name string) []string {
	if e, ok := LookupExport(name); ok {
		return e.Key
	}
	return []string{deviceIDKey}
}

func (e Export) clone() Export {
	e.Key = append([]string(nil), e.Key...)
	e.Columns = append([]Column(nil), e.Columns...)
	return e
}
