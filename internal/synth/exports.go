package synth

import (
	"strconv"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

// rowsPerDevice is the number of records per device of each export that
// holds several (InfoGatheringExport: one).
var rowsPerDevice = map[string]int{
	"SoftwareVulnerabilitiesExport":        13, // 4 software versions × 3 CVEs, and one without known CVEs
	"SoftwareInventoryExport":              10,
	"SoftwareInventoryNonCpeExport":        4,
	"SecureConfigurationsAssessmentExport": 10,
	"BaselineComplianceAssessmentExport":   10, // 2 profiles × 5 configurations
	"CertificateAssessmentExport":          5,
	"HardwareFirmwareInventoryExport":      3,
	"BrowserExtensionsInventoryExport":     4,
}

// RowsPerDevice returns the number of records per device of an export.
func RowsPerDevice(export string) int {
	if e, ok := schema.LookupExport(export); ok {
		if n := rowsPerDevice[e.Name]; n > 0 {
			return n
		}
	}
	return 1
}

type software struct {
	vendor, name, version, path, update, kb string
	cves                                    []cve
}

type cve struct {
	id       string
	score    string
	severity string
	exploit  string
}

var softwareCatalog = []software{
	{"microsoft", "edge_chromium-based", "131.0.2903.70", `C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe`, "Update Microsoft Edge to version 131.0.2903.86", "131.0.2903.86",
		[]cve{{"CVE-2024-12053", "8.8", "High", "NoExploit"}, {"CVE-2024-12381", "8.8", "High", "ExploitIsPublic"}, {"CVE-2024-12382", "6.5", "Medium", "NoExploit"}}},
	{"google", "chrome", "130.0.6723.117", `C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe`, "Update Chrome to version 131.0.6778.85", "131.0.6778.85",
		[]cve{{"CVE-2024-11110", "8.8", "High", "NoExploit"}, {"CVE-2024-11111", "6.5", "Medium", "NoExploit"}, {"CVE-2024-11395", "8.8", "High", "ExploitIsVerified"}}},
	{"microsoft", "windows_11", "10.0.22631.4460", `C:\\Windows\\System32\\ntoskrnl.exe`, "December 2024 Security Updates", "KB5048685",
		[]cve{{"CVE-2024-49138", "7.8", "High", "ExploitIsInKit"}, {"CVE-2024-49112", "9.8", "Critical", "ExploitIsPublic"}, {"CVE-2024-49122", "8.1", "High", "NoExploit"}}},
	{"oracle", "jre", "8.0.4210.9", `C:\\Program Files\\Java\\jre-1.8\\bin\\java.exe`, "Update JRE to version 8.0.4310.10", "8.0.4310.10",
		[]cve{{"CVE-2024-21147", "7.4", "High", "NoExploit"}, {"CVE-2024-21145", "4.8", "Medium", "NoExploit"}, {"CVE-2024-21140", "4.8", "Medium", "NoExploit"}}},
	{"mozilla", "firefox", "132.0.2", `C:\\Program Files\\Mozilla Firefox\\firefox.exe`, "Update Firefox to version 133.0", "133.0",
		[]cve{{"CVE-2024-11691", "9.8", "Critical", "NoExploit"}, {"CVE-2024-11692", "6.5", "Medium", "NoExploit"}, {"CVE-2024-11694", "6.1", "Medium", "NoExploit"}}},
	{"7-zip", "7-zip", "23.1.0.0", `C:\\Program Files\\7-Zip\\7z.exe`, "Update 7-zip to version 24.9.0.0", "24.9.0.0",
		[]cve{{"CVE-2024-11477", "7.8", "High", "NoExploit"}, {"CVE-2025-0411", "7.0", "High", "ExploitIsVerified"}, {"CVE-2024-11612", "7.0", "High", "NoExploit"}}},
	{"adobe", "acrobat_reader", "24.4.20220.0", `C:\\Program Files\\Adobe\\Acrobat DC\\Acrobat\\Acrobat.exe`, "Update Acrobat Reader to version 24.5.20320.0", "24.5.20320.0",
		[]cve{{"CVE-2024-49530", "7.8", "High", "NoExploit"}, {"CVE-2024-41869", "7.8", "High", "ExploitIsPublic"}, {"CVE-2024-45112", "8.6", "High", "NoExploit"}}},
	{"openssl", "openssl", "3.0.13", `/usr/lib/x86_64-linux-gnu/libssl.so.3`, "Update OpenSSL to version 3.0.15", "3.0.15",
		[]cve{{"CVE-2024-5535", "9.1", "Critical", "NoExploit"}, {"CVE-2024-6119", "7.5", "High", "NoExploit"}, {"CVE-2024-4741", "7.5", "High", "NoExploit"}}},
}

// cleanSoftware has no known vulnerability: its row in the
// vulnerabilities export has CveId null.
var cleanSoftware = []software{
	{vendor: "notepad++", name: "notepad++", version: "8.7.1.0", path: `C:\\Program Files\\Notepad++\\notepad++.exe`},
	{vendor: "videolan", name: "vlc_media_player", version: "3.0.21.0", path: `C:\\Program Files\\VideoLAN\\VLC\\vlc.exe`},
	{vendor: "python", name: "python", version: "3.12.7150.1013", path: `C:\\Program Files\\Python312\\python.exe`},
}

var nonCpeCatalog = [][3]string{
	{"contoso ltd", "contoso line-of-business client", "4.2.1"},
	{"fabrikam", "fabrikam vpn helper", "1.0.77"},
	{"", "internal build tools", "2024.11"},
	{"northwind traders", "nw inventory scanner", "7.3.0.12"},
	{"tailspin", "tailspin kiosk shell", "0.9.4"},
	{"woodgrove", "woodgrove signing agent", "3.1"},
}

type config struct {
	id, name, category, subcategory, impact string
}

var configCatalog = []config{
	{"scid-2010", "Turn on Microsoft Defender Antivirus", "Security controls", "Antivirus", "9"},
	{"scid-2011", "Update Microsoft Defender Antivirus definitions", "Security controls", "Antivirus", "8"},
	{"scid-2012", "Turn on real-time protection", "Security controls", "Antivirus", "9"},
	{"scid-91", "Enable 'Local Security Authority (LSA) protection'", "OS", "Accounts", "8"},
	{"scid-39", "Set 'Minimum password length' to '14 or more characters'", "Accounts", "Password policy", "7"},
	{"scid-47", "Disable SMBv1 client driver", "Network", "SMB", "9"},
	{"scid-73", "Block outdated ActiveX controls for Internet Explorer", "Application", "Internet Explorer", "5"},
	{"scid-5001", "Enable Microsoft Defender Firewall (domain profile)", "Security controls", "Firewall", "7"},
	{"scid-5002", "Enable Microsoft Defender Firewall (private profile)", "Security controls", "Firewall", "7"},
	{"scid-2096", "Turn on Tamper Protection", "Security controls", "Antivirus", "10"},
	{"scid-6095", "Ensure 'Enable Automatic Updates' is enabled", "OS", "Updates", "6"},
	{"scid-10", "Set controlled folder access to enabled or audit mode", "Security controls", "Exploit guard", "6"},
	{"scid-26", "Enable 'Microsoft network client: Digitally sign communications (always)'", "Network", "SMB", "6"},
	{"scid-80", "Disable 'Autoplay for non-volume devices'", "OS", "Autoplay", "4"},
}

var baselineProfiles = []string{"9e1b90be-e83e-485b-a5ec-4a429412e734", "5c4f2e7a-0b1d-4c3e-9f8a-6d7e2b1a0c93"}

var baselineConfigs = [][3]string{ // id, recommended, current source
	{"1.1.1", "Greater than or equal '24'", "password_hist_len"},
	{"1.1.2", "Less than or equal '365'", "max_pass_age"},
	{"1.1.4", "Greater than or equal '14'", "min_pass_len"},
	{"2.3.1.1", "Equals 'Disabled'", `HKLM\\SYSTEM\\CurrentControlSet\\Control\\Lsa\\NoConnectedUser`},
	{"2.3.7.1", "Equals '1'", `HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Policies\\System\\DisableCAD`},
	{"9.1.1", "Equals 'On'", `HKLM\\SOFTWARE\\Policies\\Microsoft\\WindowsFirewall\\DomainProfile\\EnableFirewall`},
	{"18.9.47.4.1", "Equals '1'", `HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows Defender\\Spynet\\SpynetReporting`},
}

type certificate struct {
	thumb, subject, issuer, org, algo, kind string
	keySize                                 int
}

var certCatalog = []certificate{
	{"A8985D3A65E5E5C4B2D7D66D40C6DD2FB19C5436", "DigiCert Global Root CA", "DigiCert Global Root CA", "DigiCert Inc", "sha1RSA", "CA", 2048},
	{"CABD2A79A1076A31F21D253635CB039D4329A5E8", "ISRG Root X1", "ISRG Root X1", "Internet Security Research Group", "sha256RSA", "CA", 4096},
	{"3B1EFD3A66EA28B16697394703A72CA340A05BD5", "Microsoft Root Certificate Authority 2010", "Microsoft Root Certificate Authority 2010", "Microsoft Corporation", "sha256RSA", "CA", 4096},
	{"D4DE20D05E66FC53FE1A50882C78DB2852CAE474", "Baltimore CyberTrust Root", "Baltimore CyberTrust Root", "DigiCert", "sha256RSA", "CA", 2048},
	{"742C3192E607E424EB4549542BE1BBC53E6174E2", "Class 3 Public Primary Certification Authority", "Class 3 Public Primary Certification Authority", "VeriSign, Inc.", "md2RSA", "CA", 1024},
	{"1F5A2C3D4E5F60718293A4B5C6D7E8F90A1B2C3D", "wks.corp.contoso.com", "Contoso Issuing CA 01", "Contoso", "sha256RSA", "End entity", 2048},
}

var certStores = []string{`LocalMachine\\Root`, `LocalMachine\\CA`, `LocalMachine\\My`, `CurrentUser\\Root`}

var firmwareRows = [][4]string{ // type, manufacturer, name, version
	{"Bios", "dell inc.", "dell_bios", "1.21.0"},
	{"Processor", "intel", "core_i7-1185g7", "8c"},
	{"Hardware", "dell", "latitude_7420", "01"},
}

type extension struct {
	browser, id, name, desc, version, risk, perms string
}

var extensionCatalog = []extension{
	{"chrome", "cjpalhdlnbpafiamejdnhcphjbkeiagm", "uBlock Origin", "Finally, an efficient blocker.", "1.61.2", "Medium", `[{"Id":"storage","IsRequired":true,"Risk":"Low"},{"Id":"webRequest","IsRequired":true,"Risk":"Medium"}]`},
	{"chrome", "dkpejdfnpdkhifgbancbammdijojoffk", "Logitech Smooth Scrolling", "Buttery-smooth scrolling for Logitech mice and touchpads.", "6.65.62", "High", `[{"Id":"tabs","IsRequired":true,"Risk":"High"},{"Id":"http://*/*","IsRequired":true,"Risk":"High"}]`},
	{"edge", "jmjflgjpcpepeafmmgdpfkogkghcpiha", "Microsoft Editor: Spelling & Grammar Checker", "Write with confidence.", "1.17.4", "Low", `[{"Id":"storage","IsRequired":true,"Risk":"Low"}]`},
	{"edge", "odfafepnkmbhccpbejgmiehpchacaeak", "uBlock Origin", "Finally, an efficient blocker.", "1.61.0", "Medium", `[{"Id":"storage","IsRequired":true,"Risk":"Low"},{"Id":"<all_urls>","IsRequired":true,"Risk":"High"}]`},
	{"firefox", "uBlock0@raymondhill.net", "uBlock Origin", "Finally, an efficient wide-spectrum content blocker.", "1.61.2", "Medium", `[{"Id":"webRequest","IsRequired":true,"Risk":"Medium"}]`},
	{"chrome", "nngceckbapebfimnlniiiahkandclblb", "Bitwarden Password Manager", "A secure and free password manager for all of your devices.", "2024.11.1", "High", `[{"Id":"clipboardWrite","IsRequired":true,"Risk":"Medium"},{"Id":"<all_urls>","IsRequired":true,"Risk":"High"}]`},
}

// hash mixes the device index into a catalog offset.
func (g *gen) offset(d, n int) int {
	x := uint64(d)*0x9e3779b97f4a7c15 ^ uint64(g.seed)
	x ^= x >> 29
	return int(x % uint64(n))
}

// appendCommon appends the device columns shared by the many-per-device
// exports: DeviceId, DeviceName, and with os the platform columns.
func (g *gen) appendCommon(dst []byte, i, d, group int, osCols bool, osName string) []byte {
	r := g.rng
	pl := &platforms[d%len(platforms)]
	dst = append(dst, `{"DeviceId":"`...)
	dst = appendDeviceID(dst, g.seed, d)
	dst = append(dst, `","DeviceName":"`...)
	dst = append(dst, pl.prefixes[d%len(pl.prefixes)]...)
	dst = append(dst, '-')
	dst = appendPad(dst, d%10000000, 7)
	if g.change > 0 && i%g.change == 0 {
		dst = append(dst, "-r2"...)
	}
	dst = append(dst, '.')
	dst = append(dst, domains[d%len(domains)]...)
	dst = append(dst, '"')
	if osCols {
		dst = append(dst, `,"`...)
		dst = append(dst, osName...)
		dst = append(dst, `":"`...)
		dst = append(dst, pl.name...)
		dst = append(dst, `","OSVersion":"`...)
		dst = append(dst, pl.versions[d%len(pl.versions)]...)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"RbacGroupId":`...)
	dst = strconv.AppendInt(dst, int64(group), 10)
	dst = append(dst, `,"RbacGroupName":"`...)
	if group == 0 {
		dst = append(dst, "UnassignedGroup"...)
	} else {
		dst = append(dst, groupNameStems[group%len(groupNameStems)]...)
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, int64(group), 10)
	}
	dst = append(dst, '"')
	if r.IntN(50) == 0 { // an undocumented column now and then
		dst = append(dst, `,"OSArchitecture":"x64"`...)
	}
	return dst
}

func appendStr(dst []byte, name, v string) []byte {
	dst = append(dst, `,"`...)
	dst = append(dst, name...)
	dst = append(dst, `":"`...)
	dst = append(dst, v...)
	return append(dst, '"')
}

func appendRaw(dst []byte, name, v string) []byte {
	dst = append(dst, `,"`...)
	dst = append(dst, name...)
	dst = append(dst, `":`...)
	return append(dst, v...)
}

func (g *gen) appendTime(dst []byte, name string, back int) []byte {
	dst = append(dst, `,"`...)
	dst = append(dst, name...)
	dst = append(dst, `":"`...)
	dst = appendSpaceTime(dst, g.now-int64(g.rng.IntN(back)))
	return append(dst, '"')
}

// appendExportRecord appends row i of a many-per-device export.
func (g *gen) appendExportRecord(dst []byte, export string, i, group int) []byte {
	g.pcg.Seed(uint64(g.seed), uint64(i)^0x5851f42d4c957f2d)
	per := rowsPerDevice[export]
	d, row := i/per, i%per
	r := g.rng
	switch export {
	case "SoftwareVulnerabilitiesExport":
		var sw software
		var c *cve
		if row == per-1 {
			sw = cleanSoftware[g.offset(d, len(cleanSoftware))]
		} else {
			sw = softwareCatalog[(g.offset(d, len(softwareCatalog))+row/3)%len(softwareCatalog)]
			c = &sw.cves[row%3]
		}
		dst = g.appendCommon(dst, i, d, group, true, "OSPlatform")
		id := appendDeviceID(nil, g.seed, d)
		cveID := "null"
		if c != nil {
			cveID = `"` + c.id + `"`
		}
		dst = appendStr(dst, "Id", string(id)+"_"+sw.vendor+"_"+sw.name+"_"+sw.version+"_"+c.idOr("_"))
		dst = appendStr(dst, "SoftwareVendor", sw.vendor)
		dst = appendStr(dst, "SoftwareName", sw.name)
		dst = appendStr(dst, "SoftwareVersion", sw.version)
		dst = appendRaw(dst, "CveId", cveID)
		if c != nil {
			dst = appendRaw(dst, "CvssScore", c.score)
			dst = appendStr(dst, "VulnerabilitySeverityLevel", c.severity)
			dst = appendStr(dst, "ExploitabilityLevel", c.exploit)
			dst = appendStr(dst, "RecommendedSecurityUpdate", sw.update)
			dst = appendStr(dst, "RecommendedSecurityUpdateId", sw.kb)
			dst = appendRaw(dst, "SecurityUpdateAvailable", "true")
		} else {
			dst = appendRaw(dst, "CvssScore", "null")
			dst = appendRaw(dst, "VulnerabilitySeverityLevel", "null")
			dst = appendRaw(dst, "ExploitabilityLevel", "null")
			dst = appendRaw(dst, "RecommendedSecurityUpdate", "null")
			dst = appendRaw(dst, "RecommendedSecurityUpdateId", "null")
			dst = appendRaw(dst, "SecurityUpdateAvailable", "false")
		}
		dst = appendStr(dst, "RecommendationReference", "va-_-"+sw.vendor+"-_-"+sw.name)
		dst = g.appendTime(dst, "FirstSeenTimestamp", 90*24*3600)
		dst = g.appendTime(dst, "LastSeenTimestamp", 6*3600)
		dst = appendRaw(dst, "DiskPaths", `["`+sw.path+`"]`)
		dst = appendRaw(dst, "RegistryPaths", `["HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\`+sw.name+`"]`)
	case "SoftwareInventoryExport":
		all := len(softwareCatalog) + len(cleanSoftware)
		k := (g.offset(d, all) + row) % all
		var sw software
		weak := 0
		if k < len(softwareCatalog) {
			sw, weak = softwareCatalog[k], len(softwareCatalog[k].cves)
		} else {
			sw = cleanSoftware[k-len(softwareCatalog)]
		}
		dst = g.appendCommon(dst, i, d, group, true, "OSPlatform")
		dst = appendStr(dst, "SoftwareVendor", sw.vendor)
		dst = appendStr(dst, "SoftwareName", sw.name)
		dst = appendStr(dst, "SoftwareVersion", sw.version)
		dst = appendRaw(dst, "NumberOfWeaknesses", strconv.Itoa(weak))
		if sw.name == "jre" {
			dst = appendStr(dst, "EndOfSupportStatus", "Upcoming EOS Version")
			dst = appendStr(dst, "EndOfSupportDate", "2026-12-31 00:00:00")
		} else {
			dst = appendStr(dst, "EndOfSupportStatus", "None")
			dst = appendRaw(dst, "EndOfSupportDate", "null")
		}
		dst = g.appendTime(dst, "SoftwareFirstSeenTimestamp", 365*24*3600)
		dst = appendRaw(dst, "DiskPaths", `["`+sw.path+`"]`)
		dst = appendRaw(dst, "RegistryPaths", `[]`)
	case "SoftwareInventoryNonCpeExport":
		sw := nonCpeCatalog[(g.offset(d, len(nonCpeCatalog))+row)%len(nonCpeCatalog)]
		dst = g.appendCommon(dst, i, d, group, true, "OsPlatform") // Defender's spelling varies
		dst = appendStr(dst, "SoftwareVendor", sw[0])
		dst = appendStr(dst, "SoftwareName", sw[1])
		dst = appendStr(dst, "SoftwareVersion", sw[2])
		dst = g.appendTime(dst, "SoftwareLastSeenTimestamp", 3*24*3600)
	case "SecureConfigurationsAssessmentExport":
		c := configCatalog[(g.offset(d, len(configCatalog))+row)%len(configCatalog)]
		dst = g.appendCommon(dst, i, d, group, true, "OSPlatform")
		dst = appendStr(dst, "ConfigurationId", c.id)
		dst = appendStr(dst, "ConfigurationName", c.name)
		dst = appendStr(dst, "ConfigurationCategory", c.category)
		dst = appendStr(dst, "ConfigurationSubcategory", c.subcategory)
		dst = appendRaw(dst, "ConfigurationImpact", c.impact)
		dst = appendRaw(dst, "IsApplicable", strconv.FormatBool(r.IntN(10) != 0))
		dst = appendRaw(dst, "IsCompliant", strconv.FormatBool(r.IntN(3) != 0))
		dst = appendRaw(dst, "IsExpectedUserImpact", strconv.FormatBool(r.IntN(4) == 0))
		dst = appendStr(dst, "RecommendationReference", "sca-_-"+c.id)
		dst = g.appendTime(dst, "Timestamp", 24*3600)
	case "BaselineComplianceAssessmentExport":
		profile := baselineProfiles[row%2]
		c := baselineConfigs[(g.offset(d, len(baselineConfigs))+row/2)%len(baselineConfigs)]
		dst = g.appendCommon(dst, i, d, group, true, "OSPlatform")
		id := appendDeviceID(nil, g.seed, d)
		dst = appendStr(dst, "Id", string(id)+"_"+profile+"_"+c[0])
		dst = appendStr(dst, "ProfileId", profile)
		dst = appendStr(dst, "ConfigurationId", c[0])
		dst = appendRaw(dst, "IsApplicable", "true")
		dst = appendRaw(dst, "IsCompliant", strconv.FormatBool(r.IntN(3) != 0))
		dst = appendStr(dst, "DataCollectionTimeOffset", "")
		dst = dst[:len(dst)-1]
		dst = appendISOTime(dst, g.now-int64(r.IntN(24*3600)))
		dst = append(dst, '"')
		dst = g.appendTime(dst, "ComplianceCalculationTimeOffset", 6*3600)
		dst = appendRaw(dst, "RecommendedValue", `["`+c[1]+`"]`)
		dst = appendRaw(dst, "CurrentValue", `["`+strconv.Itoa(r.IntN(30))+`"]`)
		dst = appendRaw(dst, "Source", `["`+c[2]+`"]`)
	case "CertificateAssessmentExport":
		c := certCatalog[(g.offset(d, len(certCatalog))+row)%len(certCatalog)]
		store := certStores[row%len(certStores)]
		dst = g.appendCommon(dst, i, d, group, false, "")
		dst = appendStr(dst, "Thumbprint", c.thumb)
		dst = appendStr(dst, "Path", store+`\\`+c.thumb)
		dst = appendStr(dst, "SignatureAlgorithm", c.algo)
		dst = appendRaw(dst, "KeySize", strconv.Itoa(c.keySize))
		dst = appendStr(dst, "ExpirationDate", "2031-11-10 00:00:00")
		dst = appendStr(dst, "IssueDate", "2006-11-10 00:00:00")
		dst = appendStr(dst, "SubjectType", c.kind)
		dst = appendStr(dst, "SerialNumber", c.thumb[:32])
		dst = appendRaw(dst, "IssuedTo", `{"CommonName":"`+c.subject+`","Organization":"`+c.org+`"}`)
		dst = appendRaw(dst, "IssuedBy", `{"CommonName":"`+c.issuer+`","Organization":"`+c.org+`"}`)
		dst = appendRaw(dst, "KeyUsage", `["DigitalSignature","CertSign","CrlSign"]`)
		dst = appendRaw(dst, "ExtendedKeyUsage", `["Server Authentication","Client Authentication"]`)
	case "HardwareFirmwareInventoryExport":
		f := firmwareRows[row%len(firmwareRows)]
		dst = g.appendCommon(dst, i, d, group, false, "")
		dst = appendStr(dst, "ComponentType", f[0])
		dst = appendStr(dst, "Manufacturer", f[1])
		dst = appendStr(dst, "ComponentName", f[2])
		dst = appendStr(dst, "ComponentVersion", f[3])
		dst = appendRaw(dst, "AdditionalFields", `"{\"SystemSKU\":\"0A6B\",\"BaseBoardManufacturer\":\"Dell Inc.\",\"DeviceFamily\":\"Workstation\",\"Cores\":`+strconv.Itoa(2+r.IntN(15))+`}"`)
	case "BrowserExtensionsInventoryExport":
		e := extensionCatalog[(g.offset(d, len(extensionCatalog))+row)%len(extensionCatalog)]
		dst = g.appendCommon(dst, i, d, group, false, "")
		dst = appendStr(dst, "BrowserName", e.browser)
		dst = appendStr(dst, "ExtensionId", e.id)
		dst = appendStr(dst, "ExtensionName", e.name)
		dst = appendStr(dst, "ExtensionDescription", e.desc)
		dst = appendStr(dst, "ExtensionVersion", e.version)
		dst = appendStr(dst, "ExtensionRisk", e.risk)
		dst = appendRaw(dst, "IsActivated", strconv.FormatBool(r.IntN(8) != 0))
		dst = appendStr(dst, "InstallationTime", "")
		dst = dst[:len(dst)-1]
		dst = appendISOTime(dst, g.now-int64(r.IntN(400*24*3600)))
		dst = append(dst, '"')
		dst = appendRaw(dst, "Permissions", e.perms)
	}
	return append(dst, '}')
}

func (c *cve) idOr(none string) string {
	if c == nil {
		return none
	}
	return c.id
}
