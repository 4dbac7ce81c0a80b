package schema

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestNormalise(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"JSON in a string, twice", `{"DeviceId":"d","DeviceGatheredInfo":"{\"AvMode\":\"0\",\"AvScanResults\":\"{\\\"Quick\\\":{\\\"ScanStatus\\\":\\\"Completed\\\"}}\"}"}`,
			`{"DeviceId":"d","DeviceGatheredInfo":{"AvMode":"0","AvScanResults":{"Quick":{"ScanStatus":"Completed"}}}}`},
		{"timestamps", `{"LastSeenTime":"2024-05-01 03:40:12","F":"2024-05-01 03:40:12.1234567","Iso":"2024-05-01T03:40:12Z","Not":"2024-05-01 03:40"}`,
			`{"LastSeenTime":"2024-05-01T03:40:12Z","F":"2024-05-01T03:40:12.1234567Z","Iso":"2024-05-01T03:40:12Z","Not":"2024-05-01 03:40"}`},
		{"numbers, literals, order and unknown members kept", `{ "b" : 1.50 , "a" : -1e3, "z": [true, false, null], "Unknown": {"x": "y"} }`,
			`{"b":1.50,"a":-1e3,"z":[true,false,null],"Unknown":{"x":"y"}}`},
		{"JSON array in a string", `{"AdditionalFields":"[{\"k\":1}]","Paths":["C:\\x"]}`, `{"AdditionalFields":[{"k":1}],"Paths":["C:\\x"]}`},
		{"strings that only look like JSON", `{"a":"{not json}","b":"[1,","c":"{}"}`, `{"a":"{not json}","b":"[1,","c":{}}`},
		{"escapes", `{"a":"\u00e9\/\"\n"}`, `{"a":"é/\"\n"}`},
	} {
		got, err := Normalise(nil, []byte(tc.in))
		if err != nil || string(got) != tc.want {
			t.Errorf("%s:\n got %s (%v)\nwant %s", tc.name, got, err, tc.want)
		}
	}
}

// FuzzNormalise: the normalised form of a valid object is valid JSON with
// the same top-level member names, in their order.
func FuzzNormalise(f *testing.F) {
	f.Add([]byte(`{"DeviceId":"d","X":"{\"a\":\"2024-01-01 00:00:00\"}"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		if _, _, err := NewKeys(nil).Read(line); err != nil {
			return // only lines that would be published
		}
		out, err := Normalise(nil, line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if !json.Valid(out) {
			t.Fatalf("%q normalised to invalid JSON %q", line, out)
		}
		if a, b := memberNames(t, line), memberNames(t, out); !bytes.Equal(a, b) {
			t.Fatalf("members %s became %s", a, b)
		}
	})
}

func memberNames(t *testing.T, obj []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var names []byte
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		names = append(append(names, tok.(string)...), 0)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return names
}

// FuzzNormaliseReference: the scanner gives exactly what the normaliser
// written on encoding/json's tokenizer gives.
func FuzzNormaliseReference(f *testing.F) {
	for _, s := range []string{
		`{"DeviceId":"d","X":"{\"a\":\"2024-01-01 00:00:00\"}"}`,
		`{"a":"\u00e9\/\"\n","b":[1,2.5e3,"[\"x\"]"],"c":" { } ","d":"2024-01-01 00:00:00.1234567"}`,
		`{ "n" : null , "t":true,"s":"{\"k\":\"[1,{\\\"z\\\":\\\"\\u0041\\\"}]\"}"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if _, _, err := NewKeys(nil).Read(line); err != nil {
			return
		}
		want, werr := refNormaliseValue(nil, line, 0)
		got, gerr := Normalise(nil, line)
		if (werr != nil) != (gerr != nil) || werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("%q:\n got %s (%v)\nwant %s (%v)", line, got, gerr, want, werr)
		}
	})
}
