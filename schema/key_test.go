package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

const testID = "3f2b8c9d0e1a4b5c6d7e8f90a1b2c3d4e5f60718"

// realisticLine builds an InfoGatheringExport record of about 1 KB:
// DeviceGatheredInfo is a JSON-encoded string full of escaped quotes,
// holding AvScanResults, itself a JSON string (doubly escaped).
func realisticLine(tb testing.TB) []byte {
	tb.Helper()
	scans, err := json.Marshal(map[string]any{
		"Quick": map[string]string{"ScanStatus": "Completed", "Timestamp": "2024-05-01T03:12:44Z"},
		"Full":  map[string]string{"ScanStatus": "NotStarted", "Timestamp": ""},
	})
	if err != nil {
		tb.Fatal(err)
	}
	info, err := json.Marshal(map[string]string{
		"AvMode": "0", "AvEngineVersion": "1.1.24030.4", "AvSignatureVersion": "1.409.1234.0",
		"AvPlatformVersion": "4.18.24030.9", "AvSignatureUpdateTime": "2024-05-01 02:00:11",
		"AvEngineUpdateTime": "2024-04-22 10:01:02", "AvPlatformUpdateTime": "2024-04-20 08:15:00",
		"AvIsSignatureUptoDate": "True", "AvIsEngineUptodate": "True", "AvIsPlatformUptodate": "False",
		"AvScanResults": string(scans), "CloudProtectionState": "Enabled",
		"Log4j_CVE_2021_44228": "NotVulnerable", "Log4JEnvironmentVariableMitigation": "false",
		"EBPFStatus": "N/A", "TlsClient10": "Disabled", "TlsServer10": "Disabled",
	})
	if err != nil {
		tb.Fatal(err)
	}
	type record struct {
		DeviceID           string `json:"DeviceId"`
		DeviceName         string
		OsPlatform         string
		OsVersion          string
		LastSeenTime       string
		RbacGroupID        int `json:"RbacGroupId"`
		RbacGroupName      string
		DeviceGatheredInfo string
		Timestamp          string
	}
	line, err := json.Marshal(record{
		DeviceID: testID, DeviceName: "wks-0042.corp.contoso.com", OsPlatform: "Windows11",
		OsVersion: "10.0.22631.3447", LastSeenTime: "2024-05-01 03:40:12", RbacGroupID: 12,
		RbacGroupName: "Workstations-EU", DeviceGatheredInfo: string(info), Timestamp: "2024-05-01 04:00:00",
	})
	if err != nil {
		tb.Fatal(err)
	}
	return line
}

func TestDeviceID(t *testing.T) {
	tests := []struct {
		name string
		line string
		want string // when wantErr is nil
		err  error
	}{
		{"minimal", `{"DeviceId":"abc"}`, "abc", nil},
		{"surrounding whitespace", " \t{ \"DeviceId\" : \"abc\" }\t \r\n", "abc", nil},
		{"other members", `{"a":1,"DeviceId":"abc","b":[true,false,null,-1.5e+3,"x"]}`, "abc", nil},
		{"nested DeviceId ignored", `{"x":{"DeviceId":"inner"},"DeviceId":"outer","y":[{"DeviceId":"z"}]}`, "outer", nil},
		{"only nested DeviceId", `{"x":{"DeviceId":"inner"},"y":[{"DeviceId":"z"}]}`, "", ErrNoDeviceID},
		{"escaped value", `{"DeviceId":"a\"b\\c\/d\u0041\n"}`, "a\"b\\c/dA\n", nil},
		{"surrogate pair", `{"DeviceId":"\ud83d\ude00x"}`, "\U0001F600x", nil},
		{"lone surrogate", `{"DeviceId":"\ud83dx"}`, "\uFFFDx", nil},
		{"escaped name", `{"Device\u0049d":"abc"}`, "abc", nil},
		{"utf8 value", `{"DeviceId":"gerät-ü"}`, "gerät-ü", nil},
		{"duplicate last wins", `{"DeviceId":"first","DeviceId":"second"}`, "second", nil},
		{"duplicate last not string", `{"DeviceId":"first","DeviceId":7}`, "", ErrNoDeviceID},
		{"duplicate last string", `{"DeviceId":7,"DeviceId":"ok"}`, "ok", nil},
		{"DeviceGatheredInfo string", `{"DeviceGatheredInfo":"{\"DeviceId\":\"fake\"}","DeviceId":"real"}`, "real", nil},
		{"realistic", "", testID, nil}, // filled below
		{"empty DeviceId", `{"DeviceId":""}`, "", ErrNoDeviceID},
		{"number DeviceId", `{"DeviceId":42}`, "", ErrNoDeviceID},
		{"null DeviceId", `{"DeviceId":null}`, "", ErrNoDeviceID},
		{"object DeviceId", `{"DeviceId":{"v":"x"}}`, "", ErrNoDeviceID},
		{"missing DeviceId", `{"DeviceName":"x"}`, "", ErrNoDeviceID},
		{"empty object", `{}`, "", ErrNoDeviceID},
		{"other case", `{"deviceid":"abc"}`, "abc", nil},
		{"other case 2", `{"DeviceID":"abc"}`, "abc", nil},
		{"other case, last wins", `{"DeviceId":"exact","deviceID":"folded"}`, "folded", nil},
		{"escaped other case", `{"device\u0069D":"abc"}`, "abc", nil},
		{"not ASCII folding", `{"DevİceId":"abc"}`, "", ErrNoDeviceID},
		{"array", `[{"DeviceId":"abc"}]`, "", ErrNotObject},
		{"string scalar", `"abc"`, "", ErrNotObject},
		{"number scalar", `42`, "", ErrNotObject},
		{"null", `null`, "", ErrNotObject},
		{"empty line", ``, "", ErrNotObject},
		{"whitespace line", " \t", "", ErrNotObject},
		{"trailing garbage", `{"DeviceId":"abc"}x`, "", ErrNotObject},
		{"two objects", `{"DeviceId":"abc"}{"DeviceId":"abc"}`, "", ErrNotObject},
		{"trailing comma", `{"DeviceId":"abc",}`, "", ErrNotObject},
		{"unterminated", `{"DeviceId":"abc"`, "", ErrNotObject},
		{"unterminated string", `{"DeviceId":"abc`, "", ErrNotObject},
		{"single quotes", `{'DeviceId':'abc'}`, "", ErrNotObject},
		{"unquoted name", `{DeviceId:"abc"}`, "", ErrNotObject},
		{"missing colon", `{"DeviceId" "abc"}`, "", ErrNotObject},
		{"bad escape", `{"DeviceId":"a\x"}`, "", ErrNotObject},
		{"bad unicode escape", `{"DeviceId":"\u12G4"}`, "", ErrNotObject},
		{"short unicode escape", `{"DeviceId":"\u12"}`, "", ErrNotObject},
		{"control char", "{\"DeviceId\":\"a\tb\"}", "", ErrNotObject},
		{"invalid utf8", "{\"DeviceId\":\"a\xffb\"}", "", ErrNotObject},
		{"invalid utf8 elsewhere", "{\"DeviceId\":\"ab\",\"x\":\"\xc3\"}", "", ErrNotObject},
		{"leading zero", `{"DeviceId":"a","n":01}`, "", ErrNotObject},
		{"bad fraction", `{"DeviceId":"a","n":1.}`, "", ErrNotObject},
		{"bad exponent", `{"DeviceId":"a","n":1e}`, "", ErrNotObject},
		{"plus sign", `{"DeviceId":"a","n":+1}`, "", ErrNotObject},
		{"bad literal", `{"DeviceId":"a","n":tru}`, "", ErrNotObject},
		{"nested invalid", `{"DeviceId":"a","n":{"x":[1,2,}]}}`, "", ErrNotObject},
		{"unclosed array", `{"DeviceId":"a","n":[1,2}`, "", ErrNotObject},
		{"mismatched close", `{"DeviceId":"a","n":[1,2}]}`, "", ErrNotObject},
		{"nested object name not string", `{"DeviceId":"a","n":{1:2}}`, "", ErrNotObject},
		{"bom", "\xEF\xBB\xBF{\"DeviceId\":\"a\"}", "", ErrNotObject},
		{"deep valid", `{"DeviceId":"a","n":` + strings.Repeat("[", 500) + strings.Repeat("]", 500) + `}`, "a", nil},
	}
	for _, tc := range tests {
		line := []byte(tc.line)
		if tc.name == "realistic" {
			line = realisticLine(t)
		}
		got, err := DeviceID(line)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: got %q, %v; want %v", tc.name, got, err, tc.err)
			}
			if err != nil && len(tc.line) > 3 && strings.Contains(err.Error(), tc.line) {
				t.Errorf("%s: error %q contains the line", tc.name, err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestDeviceIDAliasing(t *testing.T) {
	line := []byte(`{"DeviceId":"abc"}`)
	id, err := DeviceID(line)
	if err != nil {
		t.Fatal(err)
	}
	if &id[0] != &line[13] || cap(id) != 3 {
		t.Fatalf("unescaped DeviceId does not alias the line with clipped capacity")
	}
	line = []byte(`{"DeviceId":"a\u0062c"}`)
	id, err = DeviceID(line)
	if err != nil || string(id) != "abc" {
		t.Fatalf("got %q %v", id, err)
	}
	id[0] = 'X'
	if line[13] != 'a' {
		t.Fatalf("escaped DeviceId aliases the line")
	}
}

func TestDeviceIDErrorsHoldNoContent(t *testing.T) {
	secretish := "s3cr3t-content-value"
	for _, line := range []string{
		`{"DeviceId":"` + secretish + `", bad}`,
		`{"x":"` + secretish + `"}`,
		`["` + secretish + `"]`,
		`{"DeviceId":"` + secretish + `"} trailing`,
		`{"DeviceId":"` + secretish + "\xff\"}",
	} {
		_, err := DeviceID([]byte(line))
		if err == nil {
			t.Fatalf("%q accepted", line)
		}
		if strings.Contains(err.Error(), secretish) {
			t.Fatalf("error %q contains line content", err)
		}
	}
	_, err := DeviceID([]byte(`{"DeviceId":"a","n":01}`))
	if err == nil || err.Error() != "schema: line is not a JSON object: expected ',' or '}' at byte 21" {
		t.Fatalf("error message: %v", err)
	}
}

func TestDeviceIDDepthLimit(t *testing.T) {
	// encoding/json allows 10000 levels of nesting; so does DeviceID.
	for _, extra := range []int{maxDepth - 1, maxDepth} {
		line := `{"DeviceId":"a","n":` + strings.Repeat("[", extra) + strings.Repeat("]", extra) + `}`
		_, err := DeviceID([]byte(line))
		var m map[string]json.RawMessage
		jerr := json.Unmarshal([]byte(line), &m)
		if (err == nil) != (jerr == nil) {
			t.Fatalf("depth %d: DeviceID %v, encoding/json %v", extra+1, err, jerr)
		}
		if extra == maxDepth && err == nil {
			t.Fatalf("depth %d accepted", extra+1)
		}
	}
}

func TestKeysReadZeroAllocs(t *testing.T) {
	line := realisticLine(t)
	for _, cols := range [][]string{nil, {"DeviceId", "OsPlatform", "RbacGroupId", "Missing"}} {
		k := NewKeys(cols)
		allocs := testing.AllocsPerRun(100, func() {
			if _, _, err := k.Read(line); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Fatalf("Keys(%q).Read allocates %v times per line", cols, allocs)
		}
	}
}

// referenceDeviceID is DeviceID's contract expressed with encoding/json:
// the last top-level member whose name equals DeviceId case-insensitively.
func referenceDeviceID(line []byte) (string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil || m == nil { // m == nil: the line is null
		return "", ErrNotObject
	}
	var raw json.RawMessage
	ok := false
	dec := json.NewDecoder(bytes.NewReader(line))
	if _, err := dec.Token(); err != nil {
		return "", ErrNotObject
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", ErrNotObject
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "", ErrNotObject
		}
		if strings.EqualFold(tok.(string), "DeviceId") {
			raw, ok = v, true
		}
	}
	if !ok {
		return "", ErrNoDeviceID
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || s == "" {
		return "", ErrNoDeviceID
	}
	return s, nil
}

func FuzzDeviceID(f *testing.F) {
	f.Add([]byte(`{"DeviceId":"abc"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		got, err := DeviceID(line)
		if err != nil && !errors.Is(err, ErrNotObject) && !errors.Is(err, ErrNoDeviceID) {
			t.Fatalf("unexpected error kind %v", err)
		}
		if !utf8.Valid(line) {
			// encoding/json accepts invalid UTF-8 inside strings (replacing
			// it with U+FFFD); DeviceID rejects it (RFC 8259 §8.1). Outside
			// strings, invalid UTF-8 is a syntax error for both. So the
			// only thing to compare is that DeviceID rejects the line.
			if !errors.Is(err, ErrNotObject) {
				t.Fatalf("invalid UTF-8 line: got %q, %v; want ErrNotObject", got, err)
			}
			return
		}
		want, werr := referenceDeviceID(line)
		if werr != nil {
			if !errors.Is(err, werr) {
				t.Fatalf("got %q, %v; encoding/json says %v", got, err, werr)
			}
			return
		}
		if err != nil || string(got) != want {
			t.Fatalf("got %q, %v; encoding/json says %q", got, err, want)
		}
	})
}

func BenchmarkDeviceID(b *testing.B) {
	line := realisticLine(b)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		id, err := DeviceID(line)
		if err != nil || len(id) != 40 {
			b.Fatalf("%q %v", id, err)
		}
	}
}
